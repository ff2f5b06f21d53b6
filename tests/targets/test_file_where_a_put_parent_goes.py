"""A regular file standing on the mirror where a put's parent directory goes, keep_deleted
off, on the targets whose root is a directory (local, rsync through a real sshd).

Shape: the mirror holds a file `a` (an operator's, a restore gone wrong, or the mirror's own
`a` whose replacement by a directory at the source - `rm a; mkdir a; echo > a/f` - was
coalesced into the put of a/f); the source sends a/f. The local target's parent walk
(local_parents.open_parent) replaces the file with a directory, and the rsync target's
mkdirs does the same for mkdir and move, and its put does it for a symlink in the way
(UNLINK_PARENTS, today's change): a put of a/f must land the same way on both.

What goes wrong on rsync: rsync's receiver fails ("recv_generator: failed to stat
".../a/f": Not a directory (20)", exit 23), which BatchRunner classifies RetryableError;
nothing removes the file, so the put is retried (RetryableError) and never lands: the
mirror lacks a/f. With keep_deleted on it works only because the in-run keep (inrun.py,
keeps_parents_in_put) links the file into the trash and removes it first.

Reach: only items that do not name their source tree (put(), and sync() items without
source_root: the staged path, rsync `--copy-links --no-implied-dirs`). The shipper's items
always name it (Shipper._item), and that rsync run sends the implied parent directories,
which `--force` puts in place of the file: the same shape through the daemon holds
(tests/e2e/test_planted_parent_while_running.py). So this is a Target contract
(conformance) fault, not yet a daemon one.

Diagnosis: mirrord/targets/rsync/batch.py BatchRunner._run_group retries only after
_unlink_parents, and remote.UNLINK_PARENTS removes a symlink in the way (`[ -L "$c" ]`),
never a non-directory: a file where a parent goes needs the same clearing.
"""

from __future__ import annotations

import pytest

from mirrord.targets.model import SyncItem

from .test_conformance import put, write
from .test_planted_symlinks import dir_target, root_of  # noqa: F401

MTIME = 1_600_000_000.25


@pytest.mark.parametrize("parent", ["a", "d/a"])
def test_a_put_replaces_a_file_where_its_parent_goes(dir_target, tmp_path, parent):  # noqa: F811
    where = root_of(dir_target) / parent
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_bytes(b"a file in the way")
    put(dir_target, tmp_path, f"{parent}/f", b"landed")
    assert where.is_dir()
    assert dir_target.read(f"{parent}/f") == b"landed"


def test_a_batch_put_below_a_file_lands(dir_target, tmp_path):  # noqa: F811
    """The same through sync(), the shipper's way: the item's error is the row's."""
    (root_of(dir_target) / "a").write_bytes(b"a file in the way")
    local = write(tmp_path, "a/f", b"landed", MTIME)
    res = dir_target.sync([SyncItem("a/f", "file", str(local), 6, MTIME)])
    assert res[0].error is None, res[0].error
    assert dir_target.read("a/f") == b"landed"
