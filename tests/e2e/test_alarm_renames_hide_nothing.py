"""A rename noted by the alarm (mirrord/alarm_moved.py) never hides a real destruction:
each sequence destroys 20 mirrored files and must count at least 20.

Found by a review of the exchange rule (helper-137): it asked only whether some file
stood at the rename's other name, not whether it was the file the targets hold, so a
renamed tree leaving the source counted 1 (or 0) wherever files of the same names stood
at the other end: `mv photos photos.old`, new photos/* written, photos.old moved out of
the source (a ransomware-style swap). Now the file at the other name must have the size
and mtime the targets hold. The real daemon on both watchers, a local target."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import local_mirror, wait_converged
from tests.e2e.test_alarm_exchange import exchange, fill, settled_count

N = 20


@pytest.fixture(params=["inotify", "fanotify"])
def setup(request, tmp_path: Path):
    src = tmp_path / "src"
    fill(src / "photos", N, "f")
    for other in ("b", "c"):         # the same names as photos, other bytes
        fill(src / other, N, "f")
        for p in (src / other).iterdir():
            p.write_bytes(other.encode() * 3 + p.read_bytes())
    (tmp_path / "outside").mkdir()
    with local_mirror(tmp_path, f"watcher = {request.param}\nalarm_deletes = 1000\n"
                                "alarm_window = 10m") as (daemon, target):
        yield tmp_path, src, daemon, target


def move_out(tmp: Path, src: Path, name: str) -> None:
    """A rename out of the source root (same file system): a tree removal to mirrord."""
    os.rename(src / name, tmp / "outside" / name)


def renamed_then_rewritten(src: Path, target, *, same_bytes: bool = False) -> None:
    """`mv photos photos.old`, then photos/* made again (new files: other mtimes)."""
    os.rename(src / "photos", src / "photos.old")
    wait_converged(src, target)
    fill(src / "photos", N, "f")
    if not same_bytes:
        for p in (src / "photos").iterdir():
            p.write_bytes(b"ENCRYPTED " + p.read_bytes())
    wait_converged(src, target)


def test_a_renamed_tree_moved_out_counts(setup):
    tmp, src, daemon, target = setup
    os.rename(src / "photos", src / "photos.old")
    wait_converged(src, target)
    move_out(tmp, src, "photos.old")
    assert settled_count(src, daemon, target) >= N


@pytest.mark.parametrize("same_bytes", [False, True])
def test_a_tree_renamed_rewritten_at_its_old_name_and_moved_out_counts(setup, same_bytes):
    tmp, src, daemon, target = setup
    renamed_then_rewritten(src, target, same_bytes=same_bytes)
    move_out(tmp, src, "photos.old")
    assert settled_count(src, daemon, target) >= N


def test_a_tree_renamed_rewritten_and_removed_counts(setup):
    tmp, src, daemon, target = setup
    renamed_then_rewritten(src, target, same_bytes=True)
    shutil.rmtree(src / "photos.old")
    assert settled_count(src, daemon, target) >= N


def test_a_tree_moved_out_with_its_name_made_again_counts(setup):
    # the name stands again at once: a comparison's deletes, not a tree removal (inotify)
    tmp, src, daemon, target = setup
    renamed_then_rewritten(src, target)
    move_out(tmp, src, "photos.old")
    (src / "photos.old").mkdir()
    assert settled_count(src, daemon, target) >= N


def test_a_rename_chain_then_the_old_tree_moved_out_counts(setup):
    tmp, src, daemon, target = setup
    os.rename(src / "photos", src / "old")
    os.rename(src / "c", src / "photos")
    wait_converged(src, target)
    move_out(tmp, src, "old")
    assert settled_count(src, daemon, target) >= N


def test_an_exchange_then_one_side_moved_out_counts(setup):
    tmp, src, daemon, target = setup
    exchange(src / "photos", src / "b")
    wait_converged(src, target)
    move_out(tmp, src, "b")
    assert settled_count(src, daemon, target) >= N
