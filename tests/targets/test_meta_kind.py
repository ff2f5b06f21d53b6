"""Target.meta_kind: what stands at `.mirrord/heartbeat.json` when read_meta answers None,
on the targets whose root is a directory (local, rsync through a real sshd); memory and S3
have names only (None).

Shape: a directory, a FIFO, a symlink (to a file outside holding a heartbeat), a symlink to
a directory at the name, or `.mirrord` itself a symlink or a file. read_meta answers None
for each (never followed, never opened: tests/targets/test_fifo_planted_in_the_mirror.py),
and `mirrord failover` said "no heartbeat.json on target mirror", sending the operator
looking for a file that is missing when something else stands there. meta_kind says
what, looking with lstat / find -P only: a FIFO never blocks it.
"""

from __future__ import annotations

import os

import pytest

from mirrord.failover.heartbeat import HEARTBEAT

from .conftest import make_target
from .test_fifo_planted_in_the_mirror import _returns
from .test_planted_symlinks import root_of

NAME = ".mirrord/heartbeat.json"


def plant(root, shape: str, outside) -> tuple[str, str] | None:
    """Make `shape` in `root`; the (where, what) meta_kind must answer."""
    meta, hb = root / ".mirrord", root / NAME
    if shape in ("symlink-at-meta", "file-at-meta"):
        for p in sorted(meta.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
        meta.rmdir()
    if shape == "directory":
        hb.mkdir()
        return NAME, "a directory"
    if shape == "fifo":
        os.mkfifo(hb)
        return NAME, "a FIFO (named pipe)"
    if shape == "symlink":
        os.symlink(outside / "heartbeat.json", hb)
        return NAME, f"a symlink to {str(outside / 'heartbeat.json')!r}"
    if shape == "symlink-to-dir":
        os.symlink(outside, hb)
        return NAME, f"a symlink to {str(outside)!r}"
    if shape == "symlink-at-meta":   # .mirrord -> outside, where a heartbeat file is
        os.symlink(outside, meta)
        return ".mirrord", f"a symlink to {str(outside)!r}"
    if shape == "file-at-meta":
        meta.write_text("not a directory")
        return ".mirrord", "a regular file"
    return None   # absent


SHAPES = ["directory", "fifo", "symlink", "symlink-to-dir", "symlink-at-meta", "file-at-meta",
          "absent"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_meta_kind_names_what_stands_at_the_heartbeat(kind, shape, request, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "heartbeat.json").write_text('{"version": 1, "time": "2030-01-01T00:00:00Z"}')
    t = make_target(kind, request, tmp_path)
    t.open()
    try:
        expected = plant(root_of(t), shape, outside)
        assert t.read_meta(HEARTBEAT) is None
        got = []
        assert _returns(lambda: got.append(t.meta_kind(HEARTBEAT)), root_of(t) / NAME)
        assert got == [expected]
    finally:
        t.close()


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_a_heartbeat_file_is_nothing_in_the_way(kind, request, tmp_path):
    t = make_target(kind, request, tmp_path)
    t.open()
    try:
        t.write_meta(HEARTBEAT, b"{}")
        assert t.meta_kind(HEARTBEAT) is None
    finally:
        t.close()


def test_a_target_of_names_only_tells_nothing():
    t = make_target("memory", None, None)
    t.open()
    assert t.meta_kind(HEARTBEAT) is None
