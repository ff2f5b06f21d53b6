"""A move on the local target whose destination is on another mount below the root (a
tmpfs or a bind mount mounted inside the mirror: a cache directory, a bigger disk for one
part of the tree).

Shape: the source renames `a/f` (or the directory `d`) to `mnt/f` (`mnt/d`), and the
mirror's `mnt` is a mount point. The put path handles this shape (local_stage stages
beside the destination on EXDEV, tests/targets/test_local_put_walk.py's bind mount); the
move must too: either move it (copy and remove) or say NotFound, which makes the shipper
send the destination in full (Shipper: a file's move NotFound -> no outcome, the row runs
as a put; a directory's -> MoveOps._make_moved_dir).

What goes wrong: rename(2) says EXDEV, classified PermanentError: the move row fails as
permanent (error_outcome) and nothing else sends mnt/f, so the mirror lacks it while the
source is quiet. The rsync target's `mv` copies across file
systems, so the same source change converges there. (Not new today: the by-path move
before it failed the same way.)

Diagnosis: mirrord/targets/local.py LocalTarget.move: os.rename(..., src_dir_fd,
dst_dir_fd) with no EXDEV case; classify_oserror (mirrord/targets/failures.py) maps EXDEV
to PermanentError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.errors import NotFound

from .test_local_put_walk import local, put  # noqa: F401
from .test_local_staging import tmpfs


@pytest.fixture
def mounted(local):  # noqa: F811
    with tmpfs(Path(local.root) / "mnt") as m:
        yield m


@pytest.mark.parametrize("what", ["file", "dir"])
def test_a_move_onto_another_mount_below_the_root_converges(local, tmp_path, mounted, what):  # noqa: F811
    src = "a/f" if what == "file" else "d"
    put(local, tmp_path, "a/f" if what == "file" else "d/f", b"moving")
    dst = "mnt/f" if what == "file" else "mnt/d"
    try:
        local.move(src, dst)
    except NotFound:   # acceptable: the shipper then sends dst in full
        return
    assert local.read(dst if what == "file" else "mnt/d/f") == b"moving"
    assert local.stat(src) is None
