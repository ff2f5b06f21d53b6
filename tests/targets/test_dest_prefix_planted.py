"""A symlink (or a file) planted on the mirror host at a source's dest prefix
(`[source:x] dest = uploads`, the mirror's `uploads -> /elsewhere`): the rsync target's
puts must not land outside the root (and must land).

Shape: every item the shipper sends for such a source names its source tree
(SyncItem.source_root / source_rel, path `uploads/<rel>`: Shipper._item), so the rsync
target groups them per (source root, dest) and runs one rsync whose destination argument
is `host:<root>/uploads/`. With `uploads` replaced on the host by a symlink to a
directory outside the root, that run writes every file into the outside directory and
exits 0: no error, so neither the nolink checks nor today's UNLINK_PARENTS retry (which
run only after rsync refused an item) ever look at it. The items are acked as shipped;
the mirror itself holds nothing.

What goes wrong (found by trying it): outside/victim is overwritten with the source's
bytes and outside/a/new is created, the results carry no error, and `uploads` is still
the symlink.

Diagnosis: mirrord/targets/rsync/batch.py BatchRunner._rsync (now transfer.run_rsync) builds the remote
destination `<root>/<dest>/` as a path (`remote += b"/" + dest`), which rsync's receiver
resolves by chdir(2), following every symlink in it; the dest's components are never
checked (nolink) nor made with mkdirs first (which would also clear a file standing
there: the second test, where `uploads` is a file and every retry fails with exit 11,
RetryableError, so the source's rows never drain). The local target is not affected (its put
walks from the root by descriptor), and is run here for contrast.
"""

from __future__ import annotations

from mirrord.targets.model import SyncItem

from .test_planted_symlinks import dir_target, outside, plant, root_of, snapshot  # noqa: F401


def test_puts_below_a_symlinked_dest_prefix_stay_inside(dir_target, tmp_path, outside):  # noqa: F811
    src = tmp_path / "source"
    (src / "a").mkdir(parents=True)
    (src / "victim").write_bytes(b"from the source")   # outside/victim exists: overwritten
    (src / "a" / "new").write_bytes(b"new")
    before = snapshot(outside)
    plant(dir_target, "uploads", outside)
    items = [SyncItem(f"uploads/{rel}", "file", str(src / rel), (src / rel).stat().st_size,
                      (src / rel).stat().st_mtime, source_root=str(src), source_rel=rel)
             for rel in ("victim", "a/new")]
    results = dir_target.sync(items)
    assert snapshot(outside) == before   # nothing written outside...
    assert [r.error for r in results] == [None, None]
    assert not (root_of(dir_target) / "uploads").is_symlink()
    assert dir_target.read("uploads/victim") == b"from the source"   # ...and it landed inside
    assert dir_target.read("uploads/a/new") == b"new"


def test_puts_below_a_dest_prefix_replaced_by_a_file_land(dir_target, tmp_path):  # noqa: F811
    """The same dest prefix replaced on the host by a regular file: rsync's receiver cannot
    make its destination (`--mkpath`: mkdir ... exit 11), so every item of that source
    fails, on every retry: the rows never drain. The local target replaces the file (its
    parent walk), as mkdirs would on the host if the dest were made with it first."""
    src = tmp_path / "source"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x").write_bytes(b"x")
    (root_of(dir_target) / "uploads").write_bytes(b"a file in the way")
    item = SyncItem("uploads/a/x", "file", str(src / "a" / "x"), 1,
                    (src / "a" / "x").stat().st_mtime, source_root=str(src), source_rel="a/x")
    (result,) = dir_target.sync([item])
    assert result.error is None, result.error
    assert dir_target.read("uploads/a/x") == b"x"
