"""A delete the keeper found nothing to keep for (SyncItem.lives_on: a rename the journal
sent as a put and a delete) leaves no version on a versioned bucket, on real SeaweedFS
(mirrord/targets/s3/batch.py, versioning.delete_unkept); any other version at the old
name stays kept, and a plain delete still leaves its version listed as 'deleted'."""

from __future__ import annotations

import pytest

from mirrord.targets.model import SyncItem
from mirrord.trash.model import DELETED
from tests.targets.test_s3_trash import put, vs3  # noqa: F401 (vs3: a fixture)
from tests.targets.test_s3_versioned_move import listed, versions



def delete_item(path: str, **kw) -> SyncItem:
    return SyncItem(path, "absent", **kw)


@pytest.mark.parametrize("batched", [False, True])
def test_a_delete_whose_bytes_live_on_leaves_no_version(vs3, tmp_path, batched):
    put(vs3, tmp_path, "old.jpg", b"photo")
    put(vs3, tmp_path, "new.jpg", b"photo")                  # the fallback's put
    put(vs3, tmp_path, "gone.jpg", b"deleted for real")
    entry = vs3.stat("old.jpg")
    items = [delete_item("old.jpg", moved_to="new.jpg", lives_on=entry)]
    if batched:   # beside a plain delete: DeleteObjects for that one, not for this one
        items.append(delete_item("gone.jpg"))
    results = vs3.sync(items)
    assert [r.error for r in results] == [None] * len(items)
    assert vs3.stat("old.jpg") is None and vs3.read("new.jpg") == b"photo"
    assert versions(vs3, "old.jpg") == [("dm", True)]
    assert listed(vs3) == ([("gone.jpg", DELETED)] if batched else [])


def test_another_version_at_the_old_name_stays_kept(vs3, tmp_path):
    put(vs3, tmp_path, "old.jpg", b"photo")
    compared = vs3.stat("old.jpg")
    put(vs3, tmp_path, "old.jpg", b"other bytes")          # replaced since the keeper looked
    (res,) = vs3.sync([delete_item("old.jpg", moved_to="new.jpg", lives_on=compared)])
    assert res.error is None and vs3.stat("old.jpg") is None
    # the version that held other bytes is kept; the one compared is noncurrent too
    assert listed(vs3) == [("old.jpg", DELETED), ("old.jpg", "overwritten")]
