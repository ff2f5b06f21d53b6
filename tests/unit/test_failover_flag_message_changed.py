"""mode = flagfile, failback: it removes the flag failover wrote, or restores the one that
stood there before the first failover (with its permissions and owner), also when the
`message` in the INI file changed between failover and failback or between two failovers.
It once left the site read-only ("was not written by failover; left alone", exit 0),
restored the first failover's flag as "the original", and restored a 0600 notice as 0644."""

from __future__ import annotations

import os
import stat

from mirrord.failover.appconfig import FlagFileSwitch


def switch(tmp_path, message: str) -> FlagFileSwitch:
    return FlagFileSwitch(tmp_path / "app" / "readonly.flag", message, tmp_path / "state")


def test_failback_removes_a_flag_written_with_the_previous_message(tmp_path):
    (tmp_path / "app").mkdir()
    assert switch(tmp_path, "Maintenance").apply(True)[0]
    changed, detail = switch(tmp_path, "Read-only: served from the mirror").apply(False)
    assert changed and detail.startswith("removed")
    assert not (tmp_path / "app" / "readonly.flag").exists()


def test_two_failovers_with_different_messages_keep_the_first_original(tmp_path):
    (tmp_path / "app").mkdir()
    flag = tmp_path / "app" / "readonly.flag"
    flag.write_bytes(b"operator's own notice\n")
    assert switch(tmp_path, "first").apply(True)[0]
    assert switch(tmp_path, "second").apply(True)[0]
    assert flag.read_bytes() == b"second\n"
    changed, _ = switch(tmp_path, "second").apply(False)
    assert changed and flag.read_bytes() == b"operator's own notice\n"


def test_a_flag_nobody_recorded_writing_is_still_left_alone(tmp_path):
    (tmp_path / "app").mkdir()
    flag = tmp_path / "app" / "readonly.flag"
    flag.write_bytes(b"someone else's\n")
    changed, detail = switch(tmp_path, "ours").apply(False)
    assert not changed and "left alone" in detail and flag.exists()


def test_a_restored_flag_keeps_its_permissions_and_owner(tmp_path):
    # atomic_write made it 0644 root: a 0600 notice became readable by every local user
    (tmp_path / "app").mkdir()
    flag = tmp_path / "app" / "readonly.flag"
    flag.write_bytes(b"operator's own notice\n")
    flag.chmod(0o600)
    os.chown(flag, 33, 33)                   # www-data on Debian
    assert switch(tmp_path, "ours").apply(True)[0]
    assert switch(tmp_path, "ours").apply(False)[0]
    st = flag.stat()
    assert flag.read_bytes() == b"operator's own notice\n"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 33, 33)
