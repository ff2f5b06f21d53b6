"""A large file's multipart upload holds at most TRANSFER_PARTS_IN_MEMORY parts in memory.

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
    monkeypatch.setattr(upload, "open", lambda path, mode="rb": _Counting(path, "r"),
                        raising=False)
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
    # the reader ran ahead (the bound is reached, so the check can fail) and not beyond it
    assert (TRANSFER_PARTS_IN_MEMORY - 1) * CHUNK <= held <= TRANSFER_PARTS_IN_MEMORY * CHUNK, (
        held / CHUNK)
