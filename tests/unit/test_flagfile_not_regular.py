"""[failover] mode = flagfile: the flag is read like the switch record.

Before, `flag` was read with Path.read_bytes(): through a symlink, a FIFO blocked
`failover --dry-run` (holding failover.lock) and /ready for good, and /dev/zero
ended in a MemoryError traceback (a breaker). Now every shape that is not a regular
file of at most MAX_FLAG bytes is refused by the app.flag check, at once.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from mirrord.failover.flagfile import FlagFileSwitch
from mirrord.failover.switch_record import MAX_FLAG


def _shape(tmp_path, kind: str):
    flag = tmp_path / "etc" / "readonly.flag"
    flag.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(flag)
    elif kind == "symlink to a file":
        (tmp_path / "elsewhere").write_text("x\n")
        flag.symlink_to(tmp_path / "elsewhere")
    elif kind == "symlink to /dev/zero":
        flag.symlink_to("/dev/zero")
    elif kind == "device":
        return FlagFileSwitch(os.path.realpath("/dev/zero"), "ro", tmp_path / "state")
    elif kind == "directory":
        flag.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(flag))
        sock.close()
    elif kind == "too large":
        flag.write_bytes(b"x" * (MAX_FLAG + 1))
    return FlagFileSwitch(flag, "ro", tmp_path / "state")


_WORDS = {"fifo": "a FIFO (named pipe), not a regular file",
          "symlink to a file": "a symlink, not a regular file",
          "symlink to /dev/zero": "a symlink, not a regular file",
          "device": "a character device, not a regular file",
          "directory": "a directory, not a regular file",
          "socket": "a socket, not a regular file",
          "too large": f"unreadable ({MAX_FLAG + 1} bytes, more than the {MAX_FLAG} read)"}


@pytest.mark.parametrize("kind", list(_WORDS))
def test_a_flag_that_is_not_a_small_regular_file_is_refused_at_once(tmp_path, kind):
    switch = _shape(tmp_path, kind)
    got = {}
    worker = threading.Thread(target=lambda: got.update(
        checks=switch.precheck(True), state=switch.state()), daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "reading the flag blocked"
    flag = [c for c in got["checks"] if c.name == "app.flag"]
    assert flag and flag[0].refuses, got
    assert "not a regular file" in flag[0].message
    assert flag[0].value == got["state"] == _WORDS[kind], got   # what stands there, named
    assert _WORDS[kind] in flag[0].message
    advice = "set [failover] flag to the file itself" if "symlink" in kind else "remove it"
    assert advice in flag[0].message
    with pytest.raises(OSError):
        switch.apply(True)   # never written through, nor read without limit


def test_a_small_regular_flag_is_read_as_before(tmp_path):
    switch = _shape(tmp_path, "none")
    assert switch.current() is None and not any(c.refuses for c in switch.precheck(True))
    assert switch.apply(True)[0] and switch.current() == b"ro\n"
    assert switch.state() == "present (ours)"
