"""The rsync target does what the shipper saw (SyncItem.kind), not what the source holds
when its plan looks again (issue 17's dir flip on the 'host' target), against a real sshd.

The plan looks at the source a second time (mirrord.targets.rsync.plan.want_source). Seen
in a failing run of the dir flip: the delete of thing/inner.txt (the shipper saw it
absent; the keeper kept the host's copy as 'deleted') was planned after the NEXT
inner.txt had been written, so the run sent that version; thing's tree removal, queued
behind it, kept it with its directory as 'dir-removed', the put of the new file's event
sent it again and the next removal kept it a second time. An item whose source now holds
another kind than the shipper saw is a wait (SourceBusy, nothing done): the change's own
event runs the row again. Steps by hand, no timing.
"""

from __future__ import annotations

import os

from mirrord.errors import SourceBusy
from mirrord.targets.model import SyncItem
from mirrord.trash import keeper
from tests.targets.test_rsync_keep_in_run import WHEN, kept_files, source
from tests.targets.test_rsync_trash import root, t, write  # noqa: F401 - t: fixture


def sync_as_seen(t, src, rel: str, kind: str, *, tree: bool = False):
    """What the Shipper does with keep_deleted on for an item it saw as `kind`: keeper
    .prepare, then sync; returns the item's error (None: done)."""
    items, errors = keeper.prepare(t, [SyncItem(rel, kind, tree=tree, source_root=str(src),
                                                source_rel=rel, when=WHEN)])
    if errors[0] is not None:
        return errors[0]
    (res,) = t.sync(items)
    return res.error


def test_a_delete_does_not_send_the_file_that_came_back_after_the_look(t, tmp_path):
    write(t, "thing/inner.txt", b"inner 0")
    src = source(tmp_path, {})
    # the shipper looked: thing/inner.txt absent (deleted); then the next version came
    (src / "thing").mkdir()
    (src / "thing/inner.txt").write_bytes(b"inner 1")
    err = sync_as_seen(t, src, "thing/inner.txt", "absent")
    assert isinstance(err, SourceBusy), err
    # the delete's keep ran (the file was kept and removed); the new version was not sent
    assert not os.path.lexists(root(t) / "thing/inner.txt")
    assert sorted(kept_files(t).values()) == [b"inner 0"]


def test_a_directory_seen_is_not_replaced_by_a_file_that_came_after_the_look(t, tmp_path):
    """rsync --force would remove the directory and what is below it, unkept: a 'dir'
    item keeps nothing."""
    write(t, "thing/inner.txt", b"inner 0")
    src = source(tmp_path, {"thing": b"a file again"})
    err = sync_as_seen(t, src, "thing", "dir")
    assert isinstance(err, SourceBusy), err
    assert (root(t) / "thing/inner.txt").read_bytes() == b"inner 0"
    assert kept_files(t) == {}


def test_what_the_shipper_saw_is_still_sent(t, tmp_path):
    write(t, "thing", b"a file first")
    src = source(tmp_path, {"thing": b"a file again"})
    assert sync_as_seen(t, src, "thing", "file") is None
    assert (root(t) / "thing").read_bytes() == b"a file again"
    (tmp_path / "2").mkdir()
    src2 = source(tmp_path / "2", {})
    assert sync_as_seen(t, src2, "thing", "absent") is None   # still absent: deleted
    assert not os.path.lexists(root(t) / "thing")
