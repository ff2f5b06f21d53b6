"""trash_restore of a kept FILE onto a path where a DIRECTORY now stands, on every target
with a trash whose root is a directory (memory for the contract, local, rsync).

Shape: `d` was a file, kept (keep_deleted) and deleted; the web app then made `d/` a
directory with a file `d/x` in it; `mirrord undelete d` on a target whose keep_deleted is
off now (trash.restore.restore_on_target keeps what stands there first only with
keep_deleted on: keep_first) restores the kept file at `d`.

Contract: MemoryTarget.trash_restore and LocalTrash.trash_restore refuse with
PermanentError ("cannot restore ... onto the directory"); nothing is destroyed.
What goes wrong (found by trying it), rsync: RsyncTrash.restore's script runs
`{ [ ! -d p ] || [ -L p ] || rm -rf -- p; } && mv -T -f -- "$t" p`: the whole directory
tree `d/` (d/x and everything below it, never kept) is removed and the restore reports
success. Diagnosis: mirrord/targets/rsync/trash.py restore removes a directory at the
path instead of refusing it as the other targets do (a directory there should exit with
a refusal, as `mv -T` alone would: "cannot overwrite directory").
"""

from __future__ import annotations

import contextlib

import pytest

from mirrord.errors import PermanentError

from .conftest import make_target
from .test_conformance import put

STAMP = "20260101T000000.000000Z"


@pytest.mark.parametrize("kind", ["memory", "local", "rsync"])
def test_restore_onto_a_directory_destroys_nothing(kind, request, tmp_path):
    t = make_target(kind, request, tmp_path)
    t.open()
    try:
        put(t, tmp_path, "d", b"the old file")
        assert t.keep("d", stamp=STAMP, coming="absent") > 0
        t.delete("d")
        put(t, tmp_path, "d/x", b"the new tree")
        [kept] = [k for k in t.trash_list("d") if k.path == "d"]
        with contextlib.suppress(PermanentError):   # refusing is what memory and local do
            t.trash_restore(kept, "d")
        assert t.read("d/x") == b"the new tree"
    finally:
        t.close()
