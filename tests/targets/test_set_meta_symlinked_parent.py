"""set_meta (a chmod or touch at the source: an 'attr' row, ship_rules.meta_only) below a
symlink planted where a parent directory goes, on the targets whose root is a directory.

Shape: the mirror held `d/f` (shipped); `d` is replaced on the mirror by a symlink, either
to a directory outside the root (`d -> /elsewhere`) or to another directory of the
mirror's (`d -> real`); then the source chmods d/f. The shipper calls set_meta('d/f')
without looking at the target first (itemwise._sync_file): it must say NotFound (nothing
of the mirror's is there), so the item is put in full and the put's walk replaces the
symlink, as the rsync target's META_SCRIPT does ("A": a symlink on the way).

What goes wrong on the local target:
- `d -> /elsewhere`: PermanentError "resolves outside the root": the row fails for good
  and d/f is never put back; the mirror stays inexact although the source is quiet.
- `d -> real`: real/f's mode and mtime are changed (a file of the mirror's that the row
  is not about), and d/f is reported as set while the mirror has no d/f of its own.

Diagnosis: mirrord/targets/local.py LocalTarget.set_meta still opens `root/path` by path
(os.open(full, O_PATH|O_NOFOLLOW): O_NOFOLLOW covers the last component only, the parents
are followed) and checks the resolved place afterwards (_inside) instead of reaching the
directory with local_parents.find_dir like stat/read/delete do since today's change.
"""

from __future__ import annotations

import os

import pytest

from mirrord.errors import NotFound

from .test_conformance import put
from .test_planted_symlinks import dir_target, outside, plant, root_of, snapshot  # noqa: F401

NS = 1_500_000_000_000_000_000


def test_set_meta_below_a_parent_symlinked_outside_says_not_found(dir_target, outside):  # noqa: F811
    before = snapshot(outside)
    plant(dir_target, "d", outside)
    with pytest.raises(NotFound):   # never PermanentError: the row must be put in full
        dir_target.set_meta("d/victim", mode=0o600, mtime_ns=NS)
    assert snapshot(outside) == before
    assert os.stat(outside / "victim").st_mtime_ns != NS


def test_set_meta_below_a_parent_symlinked_inside_changes_no_other_file(dir_target, tmp_path):  # noqa: F811
    put(dir_target, tmp_path, "real/f", b"x")
    before = os.stat(root_of(dir_target) / "real" / "f")
    plant(dir_target, "d", root_of(dir_target) / "real")
    with pytest.raises(NotFound):
        dir_target.set_meta("d/f", mode=0o600, mtime_ns=NS)
    after = os.stat(root_of(dir_target) / "real" / "f")
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
