"""bench/s3_clients.py and the CRT candidate it measures (bench/s3_crt.py), on a real SeaweedFS.

The micro-benchmark's figures are only worth something if every arm stores the same
objects: checked here on a small run, key by key, with the metadata mirrord reads
back. The CRT candidate keeps lean's contract (None for an answer only the full
client can give, RetryableError for a connection that fails, no credential shown),
so a later re-evaluation compares like with like.
"""

from __future__ import annotations

import hashlib
import socket

import pytest

from bench import s3_clients
from bench.s3_crt import CrtRequests
from mirrord.config import S3Options
from mirrord.errors import RetryableError
from mirrord.targets.s3.client import make_client
from mirrord.targets.s3.keys import format_mode


def options(seaweedfs, bucket: str, endpoint: str = "") -> S3Options:
    return S3Options(bucket=bucket, endpoint_url=endpoint or seaweedfs.endpoint_url,
                     region=seaweedfs.region, access_key_id=seaweedfs.access_key,
                     secret_access_key=seaweedfs.secret_key, addressing_style="path")


def crt_for(opts: S3Options) -> CrtRequests:
    client, lean = make_client(opts, workers=2, connect_timeout=2, read_timeout=5,
                               name="t", secrets=[])
    if lean is not None:
        lean.close()
    crt = CrtRequests.for_client(client, s3_clients._session(opts).get_credentials(),
                                 opts.bucket, workers=2, connect_timeout=2, read_timeout=5)
    assert crt is not None
    return crt


@pytest.mark.parametrize("arms", [["lean", "crt", "sdk"], ["crt-transfer", "classic-transfer"],
                                  ["lean", "lean-botocore-signer"]])
def test_every_arm_stores_the_same_objects_with_metadata(seaweedfs, arms):
    opts = options(seaweedfs, seaweedfs.new_bucket())
    results = s3_clients.run(opts, arms, files=12, reps=1, concurrency=3)
    assert set(results) == set(arms)
    assert all(len(runs) == 1 and runs[0][0] > 0 and runs[0][1] > 0 for runs in results.values())
    raw = seaweedfs.client()
    for arm in arms:
        keys = [o["Key"] for o in raw.list_objects_v2(Bucket=opts.bucket,
                                                       Prefix=f"{arm}/0/")["Contents"]]
        assert len(keys) == 12, arm                # the 8 warm-up puts are the same keys
        head = raw.head_object(Bucket=opts.bucket, Key=keys[0])
        body = raw.get_object(Bucket=opts.bucket, Key=keys[0])["Body"].read()
        assert len(body) == s3_clients.SIZE
        assert head["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest(), arm
        assert head["Metadata"]["mode"] == format_mode(0o644), arm


def test_crt_answers_like_lean(seaweedfs):
    bucket = seaweedfs.new_bucket()
    crt = crt_for(options(seaweedfs, bucket))
    assert crt.put("a/b c.txt", b"hello", {"x-amz-meta-mode": "0644"})
    assert seaweedfs.client().get_object(Bucket=bucket, Key="a/b c.txt")["Body"].read() == b"hello"
    assert crt.delete("a/b c.txt") is True
    assert crt.delete("a/b c.txt") is True          # S3 answers 204 for an absent key too
    missing = crt_for(options(seaweedfs, "no-such-bucket-" + bucket))
    assert missing.put("k", b"x", {}) is None       # NoSuchBucket: the full client answers


def test_crt_connection_refused_is_retryable_without_credentials(seaweedfs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                   # closed again: nothing listens there
    crt = crt_for(options(seaweedfs, "b", endpoint=f"http://127.0.0.1:{port}"))
    with pytest.raises(RetryableError) as err:
        crt.put("k", b"x", {})
    assert seaweedfs.secret_key not in str(err.value)
    assert seaweedfs.access_key not in str(err.value)
