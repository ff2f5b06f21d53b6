"""A large file's multipart upload holds at most TRANSFER_PARTS_IN_MEMORY + 1 parts in memory.

Each S3 worker runs one upload, so a target's worst case is workers x parts in memory x
multipart_chunksize. s3transfer's own default (max_in_memory_upload_chunks = 10) read 10
parts ahead while 4 were in flight: 80 MiB per upload at 8 MiB parts, 1.25 GiB for 16
workers. Against a real SeaweedFS: the first parts are held back at the server's door, so
the reader runs as far ahead as s3transfer lets it; what it read beyond the parts that
finished is the memory the upload holds.
"""

from __future__ import annotations

import io
import os
import threading

import pytest

from mirrord.targets.s3 import upload
from mirrord.targets.s3.client import TRANSFER_PARTS_IN_MEMORY
from tests.targets.conftest import make_s3

CHUNK = 5 << 20          # make_s3's multipart_chunksize (S3's smallest part)
PARTS = 14               # more than s3transfer's default of 10 in memory


class _Counting(io.FileIO):
    """A file that counts the bytes read from it (s3transfer reads parts with read())."""

    read_bytes = 0
    lock = threading.Lock()

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        with _Counting.lock:
            _Counting.read_bytes += len(data)
        return data


def test_a_multipart_upload_reads_at_most_its_parts_in_memory_ahead(seaweedfs, tmp_path,
                                                                    monkeypatch):
    t = make_s3(seaweedfs)
    t.open()
    local = tmp_path / "big.bin"
    with open(local, "wb") as fh:
        for _ in range(PARTS):
            fh.write(os.urandom(CHUNK))
    _Counting.read_bytes = 0
    monkeypatch.setattr(upload, "open", lambda file, mode="rb", closefd=True: _Counting(
        file, "r", closefd=closefd), raising=False)
    release = threading.Event()
    done = {"bytes": 0, "most_held": 0}
    lock = threading.Lock()

    def before(params, **_):            # the first parts wait until the reader has stopped
        release.wait(timeout=2.0)

    def after(http_response, parsed, model, **_):
        with lock:
            done["bytes"] += CHUNK

    def sample(**_):
        with _Counting.lock, lock:
            done["most_held"] = max(done["most_held"], _Counting.read_bytes - done["bytes"])

    events = t.client.meta.events
    events.register("before-call.s3.UploadPart", sample)
    events.register("before-call.s3.UploadPart", before)
    events.register("after-call.s3.UploadPart", after)
    timer = threading.Timer(1.0, release.set)
    timer.start()
    try:
        st = local.stat()
        entry = t.put("big.bin", str(local), size=st.st_size, mtime=st.st_mtime)
    finally:
        release.set()
        timer.cancel()
        t.close()
    assert entry.size == PARTS * CHUNK
    with _Counting.lock:
        held = max(done["most_held"], 0)
    # the reader ran ahead (the bound is reached, so the check can fail) and not beyond it:
    # the parts holding a slot, and the one s3transfer read before it waits for a slot
    # (its yield_upload_part_bodies reads a part, then submit() takes a slot; CI saw 7)
    assert (TRANSFER_PARTS_IN_MEMORY - 1) * CHUNK <= held <= (TRANSFER_PARTS_IN_MEMORY + 1) * CHUNK, (
        held / CHUNK)


def test_large_uploads_run_at_most_large_uploads_at_once(seaweedfs, tmp_path, monkeypatch):
    """Whatever `workers` is, at most LARGE_UPLOADS files go through s3transfer at once per
    target (the others wait): the bound on what large uploads hold in memory."""
    import time
    from concurrent.futures import ThreadPoolExecutor
    monkeypatch.setattr(upload, "LARGE_UPLOADS", 2)
    t = make_s3(seaweedfs)
    t.open()
    inside, most = [0], [0]
    lock = threading.Lock()
    real = upload._put_large

    def counted(*args, **kwargs):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.3)
            return real(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1
    monkeypatch.setattr(upload, "_put_large", counted)
    files = []
    for i in range(5):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(8 << 20))
        files.append(p)
    try:
        with ThreadPoolExecutor(5) as pool:
            entries = list(pool.map(lambda p: t.put(p.name, str(p), size=p.stat().st_size,
                                                    mtime=p.stat().st_mtime), files))
    finally:
        t.close()
    assert [e.size for e in entries] == [8 << 20] * 5
    assert most[0] == 2


def test_a_large_upload_failing_after_its_file_changed_is_a_wait_not_a_failure(seaweedfs,
                                                                              tmp_path):
    """A breaker rewrote files during their multipart uploads: S3 refused the completion
    (InvalidPart, 400), recorded as a permanent error on a path the next write then sent
    whole. An upload that fails while the file is no longer what was opened is SourceBusy
    (sent again once the change is read); one that fails with the file unchanged keeps
    its own classification. The part fails here by a hook, so the order of reads and
    requests in s3transfer does not decide what is tested."""
    from botocore.exceptions import EndpointConnectionError

    from mirrord.errors import RetryableError, SourceBusy
    t = make_s3(seaweedfs)
    t.open()
    local = tmp_path / "shrinks.bin"
    change = []

    def fail(**_):
        if change:
            os.truncate(local, 10)
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    t.client.meta.events.register("before-call.s3.UploadPart", fail)
    try:
        for changed in (False, True):
            change[:] = [1] if changed else []
            local.write_bytes(os.urandom(3 * CHUNK))
            st = local.stat()
            with pytest.raises(RetryableError) as info:
                t.put("shrinks.bin", str(local), size=st.st_size, mtime=st.st_mtime)
            assert isinstance(info.value, SourceBusy) is changed, info.value
            if changed:
                assert "the source file changed while it was read" in str(info.value)
    finally:
        t.close()
