"""trash_restore / trash_fetch / trash_purge of a Kept whose key runs through a symlink
planted INSIDE the trash, on the targets whose root is a directory (local, rsync).

Shape: a kept file `.mirrord/trash/<stamp>.deleted/d/f` is listed (trash_list), then
`<stamp>.deleted/d` is replaced by `d -> /elsewhere` (which holds an `f` of its own), then
the Kept is restored, fetched or purged. The rule of today's fixes: nothing a target does
follows a symlink below its root, and the trash is below the root (open() makes only
`.mirrord/` itself real, not what is in the trash).

What goes wrong (found by trying it), rsync (mirrord/targets/rsync/trash.py):
- restore and fetch check only the LAST component of the kept file
  (`[ -f src ] && [ ! -L src ]`), so `cp -p` / `cat` read /elsewhere/f: an outside file's
  bytes are written into the mirror at the restored path, or handed to the caller;
- purge runs `rm -f -- "./$r"` by path below `cd ./.mirrord/trash`, so it unlinks
  /elsewhere/f (and `rmdir -p` walks the outside parents).
Diagnosis: these three build the kept file's path by hand and never ask `nolink` of it,
as every user-path command does (remote.NOLINK; trash.list is safe only because find
does not follow links). Local reaches the kept file by descriptor (open_file_beneath) and
holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

from mirrord.errors import NotFound, PermanentError, RetryableError

from .conftest import make_target
from .test_conformance import put
from .test_local_put_walk import snapshot
from .test_planted_symlinks import root_of

STAMP = "20260101T000000.000000Z"
REFUSED = (NotFound, PermanentError, RetryableError)


def kept_deleted(t, tmp_path):
    """`d/f` put, kept as deleted and deleted: its Kept."""
    put(t, tmp_path, "d/f", b"kept bytes")
    assert t.keep("d/f", stamp=STAMP, coming="absent") > 0
    t.delete("d/f")
    [kept] = list(t.trash_list("d/f"))
    return kept


@pytest.fixture(params=["local", "rsync"])
def planted(request, tmp_path):
    """(target, kept, outside): `d/f` kept as deleted, then its trash parent made a link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"OUTSIDE SECRET")
    t = make_target(request.param, request, tmp_path)
    t.open()
    try:
        kept = kept_deleted(t, tmp_path)
        kept_dir = (root_of(t) / kept.key).parent
        shutil.rmtree(kept_dir)
        os.symlink(outside, kept_dir)
        yield t, kept, outside
    finally:
        t.close()


def test_restore_reads_nothing_through_a_symlink_in_the_trash(planted):
    t, kept, _ = planted
    with contextlib.suppress(*REFUSED):
        t.trash_restore(kept, "restored")
    assert t.read("restored") != b"OUTSIDE SECRET"


def test_fetch_reads_nothing_through_a_symlink_in_the_trash(planted, tmp_path):
    t, kept, _ = planted
    local = tmp_path / "fetched"
    with contextlib.suppress(*REFUSED):
        t.trash_fetch(kept, str(local))
    assert not local.exists() or local.read_bytes() != b"OUTSIDE SECRET"


def test_purge_removes_nothing_through_a_symlink_in_the_trash(planted):
    t, kept, outside = planted
    before = snapshot(outside)
    with contextlib.suppress(*REFUSED):
        t.trash_purge([kept])
    assert snapshot(outside) == before


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_purge_removes_nothing_through_a_symlinked_trash(kind, request, tmp_path):
    """`.mirrord/trash -> /elsewhere` planted after the listing (open() made `.mirrord/`
    real, the trash in it is whatever is there): rsync's PURGE_SCRIPT `cd ./.mirrord/trash`
    follows it, then unlinks /elsewhere/<stamp>.deleted/d/f."""
    t = make_target(kind, request, tmp_path)
    t.open()
    try:
        kept = kept_deleted(t, tmp_path)
        trash = root_of(t) / ".mirrord" / "trash"
        outside = tmp_path / "outside"
        shutil.copytree(trash, outside, symlinks=True)
        before = snapshot(outside)
        shutil.rmtree(trash)
        os.symlink(outside, trash)
        with contextlib.suppress(*REFUSED):
            t.trash_purge([kept])
        assert snapshot(outside) == before
    finally:
        t.close()
