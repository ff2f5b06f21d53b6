"""A 'dir' item on S3 (a directory at the source; S3 keeps none) removes a file standing at
the name and nothing else: no DeleteObject of a key where no object stands.

On SeaweedFS a key with keys below it is a filer folder, and a DeleteObject of that key
deletes the folder when it is empty. A PutObject below it at the same moment (the
directory's file, sent by another worker) was then acknowledged but missing from every
listing, found only by a HEAD of its own key (seaweedfs/seaweedfs#10783 names the same
orphan for its own folder cleaner). The exchange stress test (tests/e2e/
test_exact_stream.py) lost `F/sub/deep.jpg` so in CI: the daemon's trace showed the
mkdir of F/sub and the put of F/sub/deep.jpg acknowledged at the same moment, the put
again later, and nothing removing it. Real SeaweedFS (tests/services/seaweedfs.py:
its buckets keep empty folders, so a folder left empty here stays until deleted).
"""

from __future__ import annotations

import threading

from mirrord.targets.model import SyncItem
from tests.targets.conftest import make_s3


def _folder_there(t, path: str) -> bool:
    try:
        t.client.head_object(Bucket=t.bucket, Key=t.root + path + "/")
        return True
    except Exception:   # noqa: BLE001 - 404: no folder
        return False


def _put(t, tmp_path, path: str, data: bytes) -> None:
    local = tmp_path / "body"
    local.write_bytes(data)
    t.put(path, str(local), size=len(data), mtime=1_700_000_000.0)


def test_a_dir_item_leaves_an_empty_folder_alone(seaweedfs, tmp_path):
    t = make_s3(seaweedfs)
    t.open()
    try:
        _put(t, tmp_path, "F/sub/x.jpg", b"x")
        t.delete("F/sub/x.jpg")
        assert _folder_there(t, "F/sub")
        (res,) = t.sync([SyncItem("F/sub", "dir")])
        assert res.error is None
        assert _folder_there(t, "F/sub")   # before: the DeleteObject of F/sub took it
    finally:
        t.close()


def test_a_dir_item_removes_a_file_standing_at_the_name(seaweedfs, tmp_path):
    t = make_s3(seaweedfs)
    t.open()
    try:
        _put(t, tmp_path, "G", b"a file, a directory now at the source")
        (res,) = t.sync([SyncItem("G", "dir")])
        assert res.error is None
        assert t.stat("G") is None
    finally:
        t.close()


def test_dir_items_beside_puts_below_them_lose_nothing(seaweedfs, tmp_path):
    """The race itself, 150 times: a 'dir' item of F{i}/sub and a put of F{i}/sub/deep.jpg
    at once, the folder emptied just before (as a removal of the directory's old tree
    leaves it); every object put is listed afterwards."""
    t = make_s3(seaweedfs)
    t.open()
    try:
        lost = []
        for i in range(150):
            _put(t, tmp_path, f"F{i}/sub/deep.jpg", b"old")
            t.delete(f"F{i}/sub/deep.jpg")
            body = tmp_path / f"deep{i}"
            body.write_bytes(b"deep")
            putter = threading.Thread(target=t.put, args=(f"F{i}/sub/deep.jpg", str(body)),
                                      kwargs={"size": 4, "mtime": 1_700_000_000.0})
            putter.start()
            t.sync([SyncItem(f"F{i}/sub", "dir")])
            putter.join()
            if f"F{i}/sub/deep.jpg" not in {e.path for e in t.list(f"F{i}")}:
                lost.append(i)
        assert lost == []
    finally:
        t.close()
