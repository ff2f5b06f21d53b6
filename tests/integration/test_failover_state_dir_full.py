"""A full (ENOSPC) or immutable state_dir, or a full directory of the application's link,
is refused before the pre hook (exit 3, nothing changed, naming the key, the directory
and the error), as the README promises. Before, only the existing failover.lock was opened
first: the pre hook ran, then the flip failed writing the switch record ("OSError: [Errno
28] No space left on device", INCOMPLETE, exit 1), naming neither the file nor the key.
A small real tmpfs filled with dd, chattr +i on the ext4 test directory; real PostgreSQL
pair and memcached. Every mount is undone in a finally."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirrord.failover.switch_record import RECORD
from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)
from tests.reliability.conftest import tmpfs


def _fill(directory: Path) -> None:
    """Fill the file system at `directory` to the last byte (dd stops at ENOSPC)."""
    subprocess.run(["dd", "if=/dev/zero", f"of={directory / 'filler'}", "bs=64k"],
                   capture_output=True, check=False)
    with pytest.raises(OSError):
        with open(directory / "probe", "wb") as fh:
            fh.write(b"x" * 8192)
            fh.flush()
            os.fsync(fh.fileno())


@contextlib.contextmanager
def _immutable(directory: Path):
    subprocess.run(["chattr", "+i", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@pytest.fixture
def hooked(site: Site):
    marker = site.root / "pre-hook-ran"
    site.configure(pre_failover=f"{sys.executable} -c \"open('{marker}', 'w')\"")
    return marker


def _refused(site: Site, hooked: Path, capsys, *, check: str, directory: Path,
             error: str) -> str:
    assert site.run("failover") == 3
    out = _output(capsys)
    assert not hooked.exists(), out                      # the pre hook never ran
    assert os.readlink(site.link) == site.original.decode(), out
    assert not site.marker.exists(), out                 # no reload either
    assert "INCOMPLETE" not in out and "Traceback" not in out, out
    line = next((line for line in out.splitlines() if check in line), out)
    assert line.lstrip().startswith("FAIL") and str(directory) in line and error in line, out
    return line


def test_a_full_state_dir_is_refused_before_the_pre_hook(site: Site, hooked, capsys):
    with tmpfs(site.state, "1m"):
        # an earlier run's lock file, holding its pid: its block is reused for ours, so the
        # lock is taken on the full file system, as in the trial
        (site.state / "failover.lock").write_text("1\n")
        _fill(site.state)
        line = _refused(site, hooked, capsys, check="state_dir.writable",
                        directory=site.state, error="No space left on device")
        assert "[mirrord] state_dir" in line


def test_an_immutable_state_dir_is_refused_before_the_pre_hook(site: Site, hooked, capsys):
    (site.state / "failover.lock").touch(mode=0o600)       # an earlier run's lock file
    with _immutable(site.state):
        line = _refused(site, hooked, capsys, check="state_dir.writable",
                        directory=site.state, error="Operation not permitted")
    assert "[mirrord] state_dir" in line


@contextlib.contextmanager
def _link_on_tmpfs(site: Site, hooked: Path):
    """The application's link, readonly.php and readwrite.php on a small tmpfs of their own."""
    app = site.root / "app"
    with tmpfs(app, "1m"):
        (app / "readonly.php").write_text("<?php $wgReadOnly = true;\n")
        (app / "readwrite.php").write_text("<?php $wgReadOnly = false;\n")
        site.link = app / "active.php"
        os.symlink(site.original, site.link)
        site.configure(link=str(site.link), readonly=str(app / "readonly.php"),
                       readwrite=str(app / "readwrite.php"),
                       pre_failover=f"{sys.executable} -c \"open('{hooked}', 'w')\"")
        yield app


def test_a_full_link_directory_still_takes_the_link_both_ways(site: Site, hooked, capsys):
    """A full file system still takes a short symlink, which is all a flip makes there.
    The probe wrote a 4 KiB file instead, and refused failover and failback on a full
    disk, --force or not (a trial): the site stayed read-only while the primary was back."""
    with _link_on_tmpfs(site, hooked) as app:
        _fill(app)
        assert site.run("failover") == 0, _output(capsys)
        assert os.readlink(site.link) == str(app / "readonly.php")
        assert site.run("failback") == 0, _output(capsys)
        assert os.readlink(site.link) == site.original.decode()
        assert sorted(p.name for p in app.iterdir() if p.name.startswith(".")) == []


def test_an_immutable_link_directory_is_refused_before_the_pre_hook(site: Site, hooked,
                                                                    capsys):
    with _link_on_tmpfs(site, hooked) as app:
        with _immutable(app):
            _refused(site, hooked, capsys, check="app.link_dir", directory=app,
                     error="not writable by uid")


def test_a_flag_on_a_full_file_system_is_refused_only_where_it_needs_room(site: Site,
                                                                         hooked, capsys):
    """flagfile mode: writing the message needs a block (refused before the pre hook);
    removing the flag needs none, so a failback on the same full disk goes ahead."""
    app = site.root / "app"
    with tmpfs(app, "1m"):
        flag = app / "readonly.flag"
        site.configure(mode="flagfile", flag=str(flag), link=None, readonly=None,
                       readwrite=None,
                       pre_failover=f"{sys.executable} -c \"open('{hooked}', 'w')\"")
        _fill(app)
        assert site.run("failover") == 3
        out = _output(capsys)
        assert not hooked.exists() and not flag.exists(), out
        line = next(line for line in out.splitlines() if "app.flag_dir_writable" in line)
        assert line.lstrip().startswith("FAIL") and "No space left on device" in line, out
        (app / "filler").unlink()
        assert site.run("failover") == 0, _output(capsys)
        assert flag.exists()
        _fill(app)
        assert site.run("failback") == 0, _output(capsys)
        assert not flag.exists()


def test_with_room_again_it_fails_over(site: Site, hooked, capsys):
    with tmpfs(site.state, "1m"):
        assert site.run("failover") == 0, _output(capsys)
        assert hooked.exists()
        assert os.readlink(site.link).endswith("readonly.php")


def test_the_state_dir_probe_asks_for_room_for_a_flag_files_record(tmp_path):
    """In flagfile mode the record holds the flag standing there (up to 512 KiB) and the
    message, base64: a 4 KiB probe passed on a state_dir with 12 KiB free and a 40 KB
    flag, and the flip then failed writing the record after the pre hook (a review,
    helper-159). The probe asks for the record's size; the flip then has room for it."""
    from mirrord.failover.flagfile import FlagFileSwitch

    state, app = tmp_path / "state", tmp_path / "app"
    state.mkdir()
    app.mkdir()
    flag = app / "maint.flag"
    flag.write_bytes(b"m" * 40_000)
    with tmpfs(state, "64k"):
        subprocess.run(["dd", "if=/dev/zero", f"of={state / 'filler'}", "bs=4k",
                        "count=13"], capture_output=True, check=True)   # about 12 KiB left
        switch = FlagFileSwitch(flag, "read-only for maintenance", state)
        check = switch.state_dir_check()
        assert not check.ok and "No space left on device" in check.message, check
        assert "[mirrord] state_dir" in check.message, check
        assert sorted(p.name for p in state.iterdir()) == ["filler"]   # no probe left
        (state / "filler").unlink()
        check = switch.state_dir_check()
        assert check.ok and check.message == "", check
        assert switch.apply(True)[0] and flag.read_bytes() == switch.content


def test_a_full_state_dir_does_not_refuse_a_failback(site: Site, capsys):
    """A failback only removes the switch record: it needs no room in state_dir. The probe
    asked for the record's size on every changing run, so a state_dir that filled up
    while the site ran read-only kept it read-only (exit 3; a review). An immutable one
    is still refused: the record could not be removed."""
    with tmpfs(site.state, "1m"):
        assert site.run("failover") == 0, _output(capsys)
        _fill(site.state)
        assert site.run("failback") == 0, _output(capsys)
        out = _output(capsys)
        assert os.readlink(site.link) == site.original.decode(), out
        assert not (site.state / RECORD).exists(), out         # the record removed
        assert "Traceback" not in out


def test_an_immutable_state_dir_refuses_a_failback(site: Site, capsys):
    """The record could not be removed there: refused before anything changes."""
    assert site.run("failover") == 0, _output(capsys)
    _output(capsys)
    flipped = os.readlink(site.link)
    with _immutable(site.state):
        assert site.run("failback") == 3
        out = _output(capsys)
    line = next(line for line in out.splitlines() if "state_dir.writable" in line)
    assert line.lstrip().startswith("FAIL") and "removed there after the flip" in line, out
    assert os.readlink(site.link) == flipped, out
