"""A symlink planted in the mirror leads nothing outside the root, on every target whose
root is a directory (local, rsync through a real sshd; S3 has no symlinks).

A mirror host's directory can hold what mirrord never wrote: an operator's symlink, a
restore gone wrong, or, after a failover, the web app itself. mirrord may run as root. So
every call that writes, removes or reads below a path must not follow a symlink standing
at a parent of it (or, for a removal or read, at the path itself): the local target once
unlinked /etc/passwd for delete('ln/passwd') with ln -> /etc. Each test plants the links
on the root's disk (both roots are on this machine), runs the call, then checks that
nothing outside changed AND that the call did its work inside, so a call that did
nothing cannot pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.errors import NotFound

from .conftest import make_target
from .test_conformance import put
from .test_local_put_walk import outside, snapshot  # noqa: F401 - outside: the fixture

KINDS = ["local", "rsync"]


@pytest.fixture(params=KINDS)
def dir_target(request, tmp_path):
    t = make_target(request.param, request, tmp_path)
    t.open()
    yield t
    t.close()


def root_of(t) -> Path:
    return Path(os.fsdecode(t.root))


def plant(t, rel: str, to: Path) -> None:
    p = root_of(t) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(to, p)


def test_a_put_below_a_symlinked_parent_lands_inside(dir_target, tmp_path, outside):
    before = snapshot(outside)
    plant(dir_target, "ln", outside)
    put(dir_target, tmp_path, "ln/sub/new", b"inside")
    put(dir_target, tmp_path, "ln/victim", b"overwrite?")
    assert snapshot(outside) == before
    assert (root_of(dir_target) / "ln").is_dir() and not (root_of(dir_target) / "ln").is_symlink()
    assert dir_target.read("ln/sub/new") == b"inside"
    assert dir_target.read("ln/victim") == b"overwrite?"


@pytest.mark.parametrize("tree", [False, True])
def test_a_delete_below_a_symlinked_parent_removes_nothing_outside(dir_target, tmp_path,
                                                                    outside, tree):
    put(dir_target, tmp_path, "real/gone", b"x")
    before = snapshot(outside)
    plant(dir_target, "ln", outside)
    dir_target.delete("ln/victim")
    dir_target.delete("ln/sub", tree=tree)
    dir_target.delete("real/gone")
    assert snapshot(outside) == before
    assert dir_target.stat("real/gone") is None   # the delete inside did happen


def test_a_tree_delete_does_not_follow_a_symlink_inside_the_tree(dir_target, tmp_path, outside):
    put(dir_target, tmp_path, "site/a/f", b"x")
    before = snapshot(outside)
    plant(dir_target, "site/a/ln", outside)
    dir_target.delete("site", tree=True)
    assert snapshot(outside) == before
    assert not (root_of(dir_target) / "site").exists()


def test_reads_below_or_at_a_symlink_see_nothing(dir_target, tmp_path, outside):
    put(dir_target, tmp_path, "mine", b"mine")
    plant(dir_target, "ln", outside)
    plant(dir_target, "lf", outside / "victim")
    for path in ("ln/victim", "lf"):
        assert dir_target.read(path) is None
        assert dir_target.checksum(path) is None
    assert dir_target.stat("ln/victim") is None
    assert dir_target.read("mine") == b"mine"
    listed = {e.path for e in dir_target.list() if not e.is_dir}
    assert "mine" in listed and not {p for p in listed if p.startswith("ln/")}


def test_a_move_never_takes_from_or_writes_through_a_symlink(dir_target, tmp_path, outside):
    assert dir_target.features.server_side_move   # both have move(): it is tested here
    before = snapshot(outside)
    plant(dir_target, "ln", outside)
    with pytest.raises(NotFound):
        dir_target.move("ln/victim", "stolen")
    put(dir_target, tmp_path, "a/f", b"moving")
    dir_target.move("a/f", "ln/sub/f")
    assert snapshot(outside) == before
    assert dir_target.read("ln/sub/f") == b"moving" and dir_target.stat("stolen") is None


def test_mkdir_replaces_a_symlink_it_meets(dir_target, outside):
    before = snapshot(outside)
    plant(dir_target, "d", outside)
    dir_target.mkdir("d/sub", mode=0o750)
    assert snapshot(outside) == before
    assert (root_of(dir_target) / "d" / "sub").is_dir()
    assert not (root_of(dir_target) / "d").is_symlink()
