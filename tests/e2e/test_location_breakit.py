"""Break-it shapes for a target's location set aside and restored (mirrord.locations).

The real `mirrord run` on a local target with `[reconcile] at_start = no` and
`every = off` (test_location_return's local_alarm fixture): only the record of what was
shipped to a place can tell the catch-up what that place holds. Shapes that held when
tried: a return after files and directories swapped kinds, and one of two sources sharing
a target moving its dest and back.
"""

from __future__ import annotations

from tests.e2e.helpers import Mirrord, wait_converged
from tests.e2e.test_location_return import _reopen_at, local_alarm  # noqa: F401 (a fixture)
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
    _move(cfg, "path = ./mirror\n", "path = ./mirror-b\n")
    (src / "flip").unlink()
    (src / "flip").mkdir()
    (src / "flip" / "now.jpg").write_bytes(b"below what was a file")
    (src / "dir" / "in.jpg").unlink()
    (src / "dir").rmdir()
    (src / "dir").write_bytes(b"a file where a directory was")
    at_b = _reopen_at(cfg, "local")
    try:
        daemon.start()
        wait_converged(src, at_b)
        assert daemon.stop() == 0
    finally:
        at_b.close()
    _move(cfg, "path = ./mirror-b\n", "path = ./mirror\n")
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
