"""A put whose request left whole and whose answer never came, on a real S3 target
(SeaweedFS behind a proxy that loses answers, tests/answer_proxy.py): the server stored
the object, so the put raises MaybeStored and the journal marks its row landed; a
refused connection raises a plain RetryableError (nothing stored).

Found by a review (F4): a PutObject X that timed out after S3 stored it was not taken
as landed, so `rm X; mkdir X; echo > X/y` sent X's mkdir (a HEAD, and a delete of the X
found there) beside X/y's put, the pair SeaweedFS loses one of
(mirrord.journal.key_overlaps)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrord.config import SourceConfig
from mirrord.errors import ChangedWhileSent, MaybeStored, RetryableError
from mirrord.journal import Change, Journal
from mirrord.ship_rules import error_outcome
from mirrord.shipper import Shipper, serial
from mirrord.targets.s3 import S3Target
from tests.answer_proxy import AnswerLosingProxy
from tests.exactness import differences, source_snapshot, target_snapshot
from tests.fakes import Clock
from tests.integration.test_s3_target import MTIME, PREFIX, local_file, options

S, T = "up", "s3"


@pytest.fixture
def proxy(seaweedfs):
    p = AnswerLosingProxy(seaweedfs.ports["s3"])
    yield p
    p.close()


def _target(seaweedfs, proxy, bucket: str, **kw) -> S3Target:
    t = S3Target(T, options(seaweedfs, bucket, endpoint_url=proxy.url, **kw),
                 connect_timeout=1, read_timeout=1, workers=2)
    t.open()
    return t


def _lose(key: str, method: bytes = b"PUT", query: bytes = b"[ ?]") -> re.Pattern[bytes]:
    """The request line of `method` on the object `key`, its query starting as `query`
    (a regex; default: any)."""
    return re.compile(rb"^" + method + rb" /[^ ]*/" + re.escape(key.encode()) + query,
                      re.MULTILINE)


# an error answer to the SDK's retry (botocore raises it after its after-call event)
SLOW_DOWN = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
             b"Content-Length: 88\r\nConnection: close\r\n\r\n"
             b"<Error><Code>SlowDown</Code><Message>Please reduce your rate.</Message></Error>")
SLOW_DOWN = SLOW_DOWN.replace(b"88", str(len(SLOW_DOWN.partition(b"\r\n\r\n")[2])).encode())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size,threshold", [
    (4096, 64 << 20),              # one PutObject on the lean transport (libcurl)
    ((8 << 20) + 1, 64 << 20),     # one PutObject through s3transfer (botocore)
    ((7 << 20) + 1, 6 << 20),      # multipart: the answer to its completion is lost
], ids=["small", "large", "multipart"])
@pytest.mark.parametrize("retry", ["lost-too", "refused", "slow-down"])
def test_a_put_whose_answer_is_lost_may_be_stored(seaweedfs, proxy, tmp_path, size, threshold,
                                                  retry):
    """`retry`: what the SDK's second attempt meets (botocore retries a write once): its
    answer lost too, or a refused connection (the server gone after it stored the object),
    which is what the call raises in the end: still MaybeStored."""
    bucket = seaweedfs.new_bucket()
    t = _target(seaweedfs, proxy, bucket, multipart_threshold=threshold,
                multipart_chunksize=5 << 20)
    try:
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        src = local_file(tmp_path, data)
        # multipart: CompleteMultipartUpload (POST ?uploadId=), which makes the object
        proxy.lose = (_lose(PREFIX + "f.bin", b"POST", rb"\?uploadId=") if size > threshold
                      else _lose(PREFIX + "f.bin"))
        proxy.then_refuse = retry == "refused"
        proxy.then_answer = SLOW_DOWN if retry == "slow-down" else None
        with pytest.raises(MaybeStored, match="(?i)time|closed|reset|empty|connect|SlowDown"):
            t.put("f.bin", src, size=size, mtime=MTIME)
        assert proxy.lost == 1 if retry != "lost-too" else proxy.lost >= 1
        proxy.lose = None
        head = seaweedfs.client().head_object(Bucket=bucket, Key=PREFIX + "f.bin")
        assert head["ContentLength"] == size          # it was stored: the answer was lost
    finally:
        t.close()


@pytest.mark.timeout(60)
def test_a_put_stored_then_the_gateway_gone_may_be_stored(seaweedfs, proxy, tmp_path):
    """On a kept-alive connection, the server stores the put and goes away before its
    answer: libcurl sends the request again on a fresh connection, which is refused. Its
    last attempt sent nothing, an earlier one sent the body whole: MaybeStored (the
    review of this fix found it read as refused)."""
    bucket = seaweedfs.new_bucket()
    t = _target(seaweedfs, proxy, bucket)
    try:
        t.put("warm.bin", local_file(tmp_path, b"w" * 10, name="warm"), size=10, mtime=MTIME)
        proxy.lose, proxy.crash = _lose(PREFIX + "x.bin"), True
        with pytest.raises(MaybeStored):
            t.put("x.bin", local_file(tmp_path, b"x" * 4096), size=4096, mtime=MTIME)
        assert seaweedfs.client().head_object(Bucket=bucket, Key=PREFIX + "x.bin")[
            "ContentLength"] == 4096
    finally:
        t.close()


@pytest.mark.timeout(60)
def test_a_large_put_that_may_be_stored_of_a_file_changed_meanwhile_is_landed(
        seaweedfs, proxy, tmp_path):
    """The completion's answer lost, and the file appended to while it was uploaded: a
    wait (SourceBusy, sent again once the change is read) that still says the target may
    hold what was sent (ChangedWhileSent: landed), not a plain wait."""
    bucket = seaweedfs.new_bucket()
    t = _target(seaweedfs, proxy, bucket, multipart_threshold=6 << 20,
                multipart_chunksize=5 << 20)
    try:
        size = (7 << 20) + 1
        src = local_file(tmp_path, b"c" * size)
        proxy.lose = _lose(PREFIX + "f.bin", b"POST", rb"\?uploadId=")

        def append() -> None:
            with open(src, "ab") as fh:
                fh.write(b"more")
        proxy.on_lose = append
        with pytest.raises(ChangedWhileSent, match="changed while it was read") as info:
            t.put("f.bin", src, size=size, mtime=MTIME)
        assert "read timeout" in str(info.value).lower()   # the upload's own error, kept
        assert error_outcome(SimpleNamespace(kind="put"), info.value).landed
        proxy.lose = None
        assert seaweedfs.client().head_object(Bucket=bucket, Key=PREFIX + "f.bin")[
            "ContentLength"] == size
    finally:
        t.close()


@pytest.mark.timeout(60)
def test_a_lost_part_of_a_multipart_upload_is_not_maybe_stored(seaweedfs, proxy, tmp_path):
    """An UploadPart whose answer is lost: s3transfer aborts the upload, so nothing is
    visible, and the put is a plain RetryableError."""
    bucket = seaweedfs.new_bucket()
    t = _target(seaweedfs, proxy, bucket, multipart_threshold=6 << 20,
                multipart_chunksize=5 << 20)
    try:
        size = (7 << 20) + 1
        proxy.lose = _lose(PREFIX + "f.bin", b"PUT", rb"\?[^ ]*partNumber=1[& ]")
        with pytest.raises(RetryableError) as info:
            t.put("f.bin", local_file(tmp_path, b"m" * size), size=size, mtime=MTIME)
        assert not isinstance(info.value, MaybeStored), info.value
        assert proxy.lost >= 1
        proxy.lose = None
        listed = seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents", ())
        assert [o["Key"] for o in listed] == []
    finally:
        t.close()


@pytest.mark.timeout(60)
def test_a_refused_connection_is_not_maybe_stored(seaweedfs, proxy, tmp_path):
    bucket = seaweedfs.new_bucket()
    t = _target(seaweedfs, proxy, bucket)
    try:
        proxy.close()
        for size in (10, (8 << 20) + 1):
            src = local_file(tmp_path, b"r" * size)
            with pytest.raises(RetryableError) as info:
                t.put("r.bin", src, size=size, mtime=MTIME)
            assert not isinstance(info.value, MaybeStored), info.value
        assert "r.bin" not in str(seaweedfs.client().list_objects_v2(Bucket=bucket))
    finally:
        t.close()


@pytest.mark.timeout(120)
def test_a_mkdir_over_a_put_whose_answer_was_lost_waits_for_the_keys_below(
        seaweedfs, proxy, tmp_path: Path):
    """The review's shape: PutObject X stored, its answer lost; then `rm X; mkdir X; echo >
    X/y`. X's row (landed) is never in flight beside X/y's; the mirror ends exact."""
    src = tmp_path / "src"
    src.mkdir()
    target = _target(seaweedfs, proxy, seaweedfs.new_bucket())
    j = Journal(tmp_path / "journal.db", {S: (T,)}, clock=Clock(1_800_000_000.0))
    shipper = Shipper({T: target}, [SourceConfig(S, src, (T,), dest=PREFIX.strip("/"))],
                      {T: 2}, executor=serial)
    try:
        (src / "X").write_bytes(b"X, a file")
        j.enqueue([Change(S, "X", "put")])
        (put,) = j.claim(T, 100, now=2e9, directories=False)
        proxy.lose = _lose(PREFIX + "X")
        (out,) = shipper.run_ops(target, [put])
        proxy.lose = None
        assert out.error and "MaybeStored" in out.error and out.landed, out
        j.ack([out])
        assert j.db.execute("SELECT landed FROM ops WHERE path = ?", (b"X",)).fetchone() == (1,)
        (src / "X").unlink()
        (src / "X").mkdir()
        (src / "X" / "y").write_bytes(b"y below X")
        j.enqueue([Change(S, "X", "delete"), Change(S, "X", "mkdir"), Change(S, "X/y", "put")])
        for _ in range(20):
            ops = j.claim(T, 100, now=2e9 + 3600, directories=False)
            if not ops:
                break
            assert not {"X", "X/y"} <= {op.path for op in ops}, ops   # never together
            j.ack(shipper.run_ops(target, ops))
        assert j.claim(T, 100, now=2e9 + 3600, directories=False) == []
        assert differences(source_snapshot(src, directories=False),
                           target_snapshot(target, PREFIX)) == {}
    finally:
        j.close()
        target.close()
