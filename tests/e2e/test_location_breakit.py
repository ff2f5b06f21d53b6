"""Break-it shapes for a target's location set aside and restored (mirrord.locations).

The real `mirrord run` on a local target with `[reconcile] at_start = no` and
`every = off` (test_location_return's local_alarm fixture): only the record of what was
shipped to a place can tell the catch-up what that place holds. Shapes that held when
tried: a return after files and directories swapped kinds, and one of two sources sharing
a target moving its dest and back.
"""

from __future__ import annotations

import shutil
import signal

import pytest

from tests.e2e.helpers import Mirrord, wait_converged
from tests.e2e.test_crash_in_flight import held, hold
from tests.e2e.test_location_return import _reopen_at, b_and_back, local_alarm  # noqa: F401 (a fixture)
from tests.reliability.conftest import poll


def _move(cfg, old: str, new: str) -> None:
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new))


def test_a_return_after_a_file_became_a_directory_and_back(local_alarm):  # noqa: F811
    """At B, a file of A's record became a directory and a directory a file (the source
    changed while the daemon was down, then ran at B): back at A, the catch-up repairs both
    kinds."""
    tmp, cfg, daemon, at_a = local_alarm
    src = tmp / "src"
    (src / "keep.txt").write_bytes(b"stays")
    (src / "flip").write_bytes(b"a file at A")
    (src / "dir").mkdir()
    (src / "dir" / "in.jpg").write_bytes(b"in a directory at A")
    daemon.start()
    wait_converged(src, at_a)
    assert daemon.stop() == 0
    (src / "flip").unlink()
    (src / "flip").mkdir()
    (src / "flip" / "now.jpg").write_bytes(b"below what was a file")
    (src / "dir" / "in.jpg").unlink()
    (src / "dir").rmdir()
    (src / "dir").write_bytes(b"a file where a directory was")
    b_and_back(cfg, daemon, src)
    daemon.start()
    wait_converged(src, at_a)


def test_two_sources_on_one_target_one_dest_moved_and_back(tmp_path):
    """Two sources on one local target under different dests; one source's dest moves and
    comes back while files of both are deleted: back, each area is exact (the other
    source's record was never set aside)."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_bytes(name.encode())
        (tmp_path / name / "gone.jpg").write_bytes(b"deleted while away")
    cfg = tmp_path / "mirrord.ini"
    cfg.write_text("""
[mirrord]
state_dir = ./state
workers = 2
heartbeat_interval = 200ms

[source:one]
path = ./one
dest = a
targets = local

[source:two]
path = ./two
dest = z
targets = local

[target:local]
type = local
path = ./mirror

[reconcile]
at_start = no
every = off
""")
    daemon = Mirrord(cfg, tmp_path / "mirrord.log")
    target = _reopen_at(cfg, "local")
    try:
        daemon.start()
        poll(lambda: target.read("a/gone.jpg") is not None and target.read("z/gone.jpg")
             is not None, timeout=60, what="both shipped")
        assert daemon.stop() == 0
        _move(cfg, "dest = a\n", "dest = c\n")
        daemon.start()
        poll(lambda: target.read("c/gone.jpg") is not None, timeout=60, what="c filled")
        (tmp_path / "one" / "gone.jpg").unlink()
        (tmp_path / "two" / "gone.jpg").unlink()
        poll(lambda: target.read("c/gone.jpg") is None and target.read("z/gone.jpg") is None,
             timeout=60, what="live deletes at c and z")
        assert daemon.stop() == 0
        _move(cfg, "dest = c\n", "dest = a\n")
        daemon.start()
        poll(lambda: target.read("a/gone.jpg") is None, timeout=60, what="a/gone.jpg deleted")
        assert target.read("a/keep.txt") == b"one" and target.read("z/keep.txt") == b"two"
        assert "used before" in (tmp_path / "mirrord.log").read_text()
    finally:
        daemon.stop()
        target.close()


def _crash_at_a_then_b(tmp, cfg, daemon, at_a, glob, write_at_a, after_kill) -> None:
    """A change whose op is done at A and held before its ack (fault point "shipped"),
    the daemon SIGKILLed there; `after_kill()` changes the source while it is down; the
    target moved to B, filled, stopped; moved back to A and started: A must be exact."""
    src = tmp / "src"
    faults = tmp / "faults"
    faults.mkdir()
    daemon.env["MIRRORD_FAULT_DIR"] = str(faults)
    (src / "keep.txt").write_bytes(b"stays")
    daemon.start()
    wait_converged(src, at_a)
    hold(faults, "local", glob)
    write_at_a()
    poll(lambda: held(faults, "local", glob), timeout=60, what="op done at A, held")
    daemon.kill(signal.SIGKILL)
    (faults / "shipped").unlink()
    after_kill()
    b_and_back(cfg, daemon, src)
    daemon.start()
    wait_converged(src, at_a)   # compares directories too: a parent left there fails it


@pytest.mark.parametrize("path", ["x.jpg", "new/day/x.jpg"])
def test_a_put_cut_short_at_a_then_gone_is_deleted_there_on_the_return(local_alarm, path):  # noqa: F811
    """Found by a breaker: the put was done at A, never acked; the file deleted at the
    source while down; the row ran again at B, and A's record never had it, so the return
    left it at A for good. (Below new directories, their own mkdirs were recorded at A
    first, and their removal on the return took the file with them.)"""
    tmp, cfg, daemon, at_a = local_alarm
    src = tmp / "src"
    top = path.split("/")[0]

    def write() -> None:
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_bytes(b"put at A, never acked")

    def gone() -> None:
        shutil.rmtree(src / top) if top != path else (src / path).unlink()
    _crash_at_a_then_b(tmp, cfg, daemon, at_a, path, write, gone)


def test_a_rename_cut_short_at_a_is_repaired_there_on_the_return(local_alarm):  # noqa: F811
    """A rename done at A, never acked: A's record still names the old path with its
    bytes; the source keeps the new name. The return must not trust the record's old
    name (gone at A) nor miss the new one."""
    tmp, cfg, daemon, at_a = local_alarm
    src = tmp / "src"
    (src / "old.jpg").write_bytes(b"renamed at A, never acked")

    def rename() -> None:
        (src / "old.jpg").rename(src / "moved.jpg")

    def back() -> None:      # while down: the old name comes back with the same bytes
        (src / "moved.jpg").rename(src / "old.jpg")
    _crash_at_a_then_b(tmp, cfg, daemon, at_a, "moved.jpg", rename, back)
