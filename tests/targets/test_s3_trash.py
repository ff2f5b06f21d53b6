"""The S3 target's trash (mirrord/targets/s3/trash.py) against a real SeaweedFS.

What the shared suite (test_trash_conformance.py) cannot see: the keys and metadata
actually stored, a bucket with versioning enabled end to end, the conditional copy
that makes keep() idempotent, the multipart copy above the CopyObject limit, the
batching of purges, and how failures are classified (without a credential in any
message). Raw S3 calls go through the fixture's own boto3 client.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket

import pytest

from mirrord.config import S3Options, TargetConfig
from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets import create
from mirrord.targets.mtime import ns_to_float
from mirrord.targets.s3 import versioning
from mirrord.trash.model import DELETED, OVERWRITTEN, Kept, stamp_of, stamp_time, trash_rel

NS = 1_600_000_000_123_456_789
STAMP = stamp_of(1_700_000_000.5)


def s3_on(seaweedfs, bucket: str, *, prefix: str = "pre fix/", endpoint: str = "",
          secret: str = ""):
    cfg = TargetConfig(name="s3", type="s3", workers=4, s3=S3Options(
        bucket=bucket, prefix=prefix, endpoint_url=endpoint or seaweedfs.endpoint_url,
        region=seaweedfs.region, access_key_id=seaweedfs.access_key,
        secret_access_key=secret or seaweedfs.secret_key, addressing_style="path",
        multipart_threshold=8 << 20, multipart_chunksize=5 << 20))
    return create(cfg)


@pytest.fixture
def s3(seaweedfs):
    t = s3_on(seaweedfs, seaweedfs.new_bucket())
    t.open()
    yield t
    t.close()


@pytest.fixture
def vs3(seaweedfs):
    """A target on a bucket with versioning enabled before open()."""
    bucket = seaweedfs.new_bucket()
    seaweedfs.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    t = s3_on(seaweedfs, bucket)
    t.open()
    yield t
    t.close()


def put(t, tmp_path, path: str, data: bytes, *, ns: int = NS, mode: int = 0o640):
    src = tmp_path / hashlib.sha256(path.encode() + data).hexdigest()
    src.write_bytes(data)
    os.chmod(src, mode)
    os.utime(src, ns=(ns, ns))
    return t.put(path, str(src), size=len(data), mtime=ns_to_float(ns), mtime_ns=ns, mode=mode)


def raw_keys(seaweedfs, t) -> set[str]:
    resp = seaweedfs.client().list_objects_v2(Bucket=t.bucket, Prefix=t.root)
    return {o["Key"][len(t.root):] for o in resp.get("Contents", ())}


def fetched(t, k, tmp_path) -> bytes:
    out = tmp_path / "out"
    t.trash_fetch(k, str(out))
    return out.read_bytes()


# ---------------------------------------------------------------- copy mode (no versioning)
def test_an_unversioned_bucket_keeps_by_copy_with_every_piece_of_metadata(s3, seaweedfs, tmp_path):
    assert s3.trash_mode() == "copy"
    put(s3, tmp_path, "docs/report 1.pdf", b"old pdf", mode=0o604)
    assert s3.keep("docs/report 1.pdf", stamp=STAMP, coming="file") == 7
    tkey = s3.root + trash_rel(STAMP, OVERWRITTEN, "docs/report 1.pdf")
    head = seaweedfs.client().head_object(Bucket=s3.bucket, Key=tkey)
    assert head["Metadata"]["mtime"] == "1600000000.123456789"
    assert head["Metadata"]["mode"] == "0100604"
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"old pdf").hexdigest()
    assert head["ContentType"] == "application/pdf"
    assert s3.read("docs/report 1.pdf") == b"old pdf", "an overwrite's keep leaves the file"


def test_keep_with_one_stamp_never_replaces_the_kept_old_bytes(s3, seaweedfs, tmp_path):
    # The small copy carries If-None-Match: * and no HEAD of the trash key precedes it,
    # so this passes only because the server honours the condition (SeaweedFS answers 412).
    put(s3, tmp_path, "k.txt", b"old")
    assert s3.keep("k.txt", stamp=STAMP, coming="file") == 3
    put(s3, tmp_path, "k.txt", b"NEW BYTES", ns=NS + 10**9)
    assert s3.keep("k.txt", stamp=STAMP, coming="file") == 0
    tkey = s3.root + trash_rel(STAMP, OVERWRITTEN, "k.txt")
    obj = seaweedfs.client().get_object(Bucket=s3.bucket, Key=tkey)
    assert obj["Body"].read() == b"old"
    assert obj["Metadata"]["mtime"] == "1600000000.123456789"


def test_seaweedfs_refuses_a_copy_with_if_none_match_onto_an_existing_key(s3, seaweedfs):
    c = seaweedfs.client()
    c.put_object(Bucket=s3.bucket, Key="a", Body=b"a")
    c.put_object(Bucket=s3.bucket, Key="b", Body=b"b")
    with pytest.raises(Exception) as info:
        c.copy_object(Bucket=s3.bucket, Key="b", CopySource={"Bucket": s3.bucket, "Key": "a"},
                      IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert c.get_object(Bucket=s3.bucket, Key="b")["Body"].read() == b"b"


def test_above_the_copy_limit_keep_and_restore_use_the_multipart_copy(s3, seaweedfs, tmp_path):
    s3.copy_limit = 1 << 20            # as if 1 MiB were S3's 5 GiB CopyObject limit
    calls: list[str] = []
    s3.client.meta.events.register("before-call.s3.UploadPartCopy",
                                   lambda **kw: calls.append("part"))
    data = os.urandom(6 << 20)
    put(s3, tmp_path, "big/video.mp4", data, mode=0o600)
    assert s3.keep("big/video.mp4", stamp=STAMP, coming="absent") == len(data)
    assert len(calls) >= 2, "a multipart copy, part by part"
    put(s3, tmp_path, "big/video.mp4", b"small now", ns=NS + 10**9)
    assert s3.keep("big/video.mp4", stamp=STAMP, coming="absent") == 0, "kept already"
    [k] = [k for k in s3.trash_list() if k.size == len(data)]
    assert (k.why, k.mtime_ns, k.mode) == (DELETED, NS, 0o600)
    s3.delete("big/video.mp4")
    entry = s3.trash_restore(k, "big/video.mp4")
    assert (entry.size, entry.mtime_ns, entry.mode) == (len(data), NS, 0o600)
    assert s3.read("big/video.mp4") == data


def test_a_large_object_is_not_kept_twice_under_one_stamp(s3, tmp_path):
    s3.copy_limit = 1 << 20
    old = os.urandom(2 << 20)
    put(s3, tmp_path, "big.bin", old)
    assert s3.keep("big.bin", stamp=STAMP, coming="file") == len(old)
    put(s3, tmp_path, "big.bin", os.urandom(3 << 20), ns=NS + 10**9)
    assert s3.keep("big.bin", stamp=STAMP, coming="file") == 0   # HEAD of the trash key
    [k] = s3.trash_list()
    assert fetched(s3, k, tmp_path) == old


@pytest.mark.parametrize("prefix", ["", "a b/c  d/", "pre+fix%20/"])
def test_prefixes_with_spaces_and_none_at_all(seaweedfs, tmp_path, prefix):
    t = s3_on(seaweedfs, seaweedfs.new_bucket(), prefix=prefix)
    t.open()
    try:
        put(t, tmp_path, "sp ace/x y.txt", b"xy")
        put(t, tmp_path, "sp ace/z", b"z")
        assert t.keep("sp ace", stamp=STAMP, coming="absent") == 3
        t.delete("sp ace", tree=True)
        assert raw_keys(seaweedfs, t) == {trash_rel(STAMP, "dir-removed", "sp ace/x y.txt"),
                                          trash_rel(STAMP, "dir-removed", "sp ace/z")}
        assert list(t.list()) == []
        got = {k.path: k for k in t.trash_list("sp ace")}
        assert set(got) == {"sp ace/x y.txt", "sp ace/z"}
        t.trash_restore(got["sp ace/x y.txt"], "sp ace/x y.txt")
        assert [e.path for e in t.list()] == ["sp ace/x y.txt"]
    finally:
        t.close()


def test_what_is_not_a_trash_entry_under_the_trash_is_ignored(s3, seaweedfs, tmp_path):
    c = seaweedfs.client()
    for junk in ("x.deleted/a", "20261129T123456.123456Z.eaten/a",
                 "20261129T123456.123456Z.deleted"):
        c.put_object(Bucket=s3.bucket, Key=f"{s3.root}.mirrord/trash/{junk}", Body=b"j")
    s3.write_meta("heartbeat.json", b"{}")
    assert list(s3.trash_list()) == []


def test_purge_deletes_in_batches_of_delete_batch_keys(s3, seaweedfs, tmp_path):
    s3.delete_batch = 3                # as if 3 were DeleteObjects' 1000-key limit
    sizes: list[int] = []
    s3.client.meta.events.register(
        "provide-client-params.s3.DeleteObjects",
        lambda params, **kw: sizes.append(len(params["Delete"]["Objects"])))
    for i in range(10):
        put(s3, tmp_path, f"many/{i}", b"%d" % i)
    assert s3.keep("many", stamp=STAMP, coming="absent") == 10
    kept = list(s3.trash_list())
    assert len(kept) == 10
    s3.trash_purge(kept)
    assert sizes == [3, 3, 3, 1]
    assert list(s3.trash_list()) == []
    assert {e.path for e in s3.list()} == {f"many/{i}" for i in range(10)}, "live files stay"


def test_a_kept_entry_outside_the_trash_is_refused_and_the_live_file_stays(s3, tmp_path):
    put(s3, tmp_path, "live.txt", b"live")
    forged = Kept("live.txt", STAMP, DELETED, 4, NS, "live.txt")
    for action in (lambda: s3.trash_purge([forged]), lambda: s3.trash_restore(forged, "x"),
                   lambda: s3.trash_fetch(forged, str(tmp_path / "o"))):
        with pytest.raises(PermanentError, match="not in the trash"):
            action()
    assert s3.read("live.txt") == b"live"


# ---------------------------------------------------------------- versioning
def test_versioning_is_detected_at_open_and_said_once_in_the_log(seaweedfs, caplog):
    bucket = seaweedfs.new_bucket()
    seaweedfs.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    t = s3_on(seaweedfs, bucket)
    with caplog.at_level(logging.INFO, logger="mirrord.targets.s3"):
        t.open()
    try:
        assert t.trash_mode() == "versioning"
        lines = [r.getMessage() for r in caplog.records if "versioning" in r.getMessage()]
        assert len(lines) == 1 and bucket in lines[0]
    finally:
        t.close()


def test_versioned_bucket_delete_overwrite_restore_and_purge(vs3, seaweedfs, tmp_path):
    c = seaweedfs.client()
    put(vs3, tmp_path, "img/a.png", b"v1 bytes", mode=0o604)
    assert vs3.keep("img/a.png", stamp=STAMP, coming="file") == 0, "nothing is copied"
    put(vs3, tmp_path, "img/a.png", b"v2", ns=NS + 10**9, mode=0o600)
    put(vs3, tmp_path, "img/b.png", b"b bytes")
    assert vs3.keep("img/b.png", stamp=STAMP, coming="absent") == 0
    vs3.delete("img/b.png")
    vs3.write_meta("heartbeat.json", b"1")
    vs3.write_meta("heartbeat.json", b"2")   # a noncurrent version of mirrord's own file
    assert not any(k.startswith(".mirrord/") for k in raw_keys(seaweedfs, vs3) - {
        ".mirrord/heartbeat.json"}), "no copy into the trash"

    got = {k.path: k for k in vs3.trash_list()}
    assert set(got) == {"img/a.png", "img/b.png"}
    a, b = got["img/a.png"], got["img/b.png"]
    assert (a.why, a.size, a.mtime_ns, a.mode, a.key) == (OVERWRITTEN, 8, NS, 0o604, "img/a.png")
    assert (b.why, b.size, b.key) == (DELETED, 7, "img/b.png")
    assert a.version and b.version
    versions = c.list_object_versions(Bucket=vs3.bucket, Prefix=vs3.root + "img/a.png")
    [current] = [v for v in versions["Versions"] if v["IsLatest"]]
    assert a.stamp == stamp_of(current["LastModified"].timestamp()), \
        "stamped when the version stopped being current"
    assert fetched(vs3, a, tmp_path) == b"v1 bytes"
    assert fetched(vs3, b, tmp_path) == b"b bytes"

    entry = vs3.trash_restore(a, "img/a.png")
    assert (entry.size, entry.mtime_ns, entry.mode) == (8, NS, 0o604)
    assert vs3.read("img/a.png") == b"v1 bytes"
    vs3.trash_restore(b, "img/b.png")
    assert vs3.read("img/b.png") == b"b bytes"
    after = {(k.path, k.version) for k in vs3.trash_list()}
    assert {("img/a.png", a.version), ("img/b.png", b.version)} <= after, "kept entries stay"

    vs3.trash_purge([a])
    versions = c.list_object_versions(Bucket=vs3.bucket, Prefix=vs3.root + "img/a.png")
    assert a.version not in {v["VersionId"] for v in versions["Versions"]}
    assert vs3.read("img/a.png") == b"v1 bytes", "purging a noncurrent version leaves the file"
    with pytest.raises(NotFound):
        vs3.trash_fetch(a, str(tmp_path / "gone"))
    with pytest.raises(NotFound):
        vs3.trash_restore(a, "img/a.png")
    vs3.trash_purge([a])                     # absent already: not an error


def test_versioned_listing_judges_a_key_whose_versions_span_pages(vs3, monkeypatch, tmp_path):
    monkeypatch.setattr(versioning, "VERSION_PAGE", 2)
    for i in range(5):
        put(vs3, tmp_path, "p/many", b"v%d" % i, ns=NS + i)
    put(vs3, tmp_path, "p/one", b"one")
    vs3.delete("p/one")
    kept = list(vs3.trash_list("p"))
    assert sorted((k.path, k.mtime_ns) for k in kept) == [
        ("p/many", NS + i) for i in range(4)] + [("p/one", NS)]
    assert {k.why for k in kept if k.path == "p/many"} == {OVERWRITTEN}
    assert len({k.version for k in kept}) == 5
    for k in kept:
        assert abs(stamp_time(k.stamp) - k.when) < 1e-6


def test_versioned_trash_list_filters_by_path_and_never_shows_mirrords_area(vs3, tmp_path):
    for path in ("q/a", "qq/b", "q/sub/c"):
        put(vs3, tmp_path, path, b"x")
        vs3.delete(path)
    for _ in range(3):
        vs3.write_meta("heartbeat.json", b"beat")
    assert {k.path for k in vs3.trash_list()} == {"q/a", "qq/b", "q/sub/c"}
    assert {k.path for k in vs3.trash_list("q")} == {"q/a", "q/sub/c"}
    assert {k.path for k in vs3.trash_list("q/sub/c")} == {"q/sub/c"}


def test_copies_kept_before_versioning_was_enabled_are_still_listed(seaweedfs, tmp_path):
    bucket = seaweedfs.new_bucket()
    t = s3_on(seaweedfs, bucket)
    t.open()
    put(t, tmp_path, "early.txt", b"early")
    t.keep("early.txt", stamp=STAMP, coming="absent")
    t.delete("early.txt")
    put(t, tmp_path, "pre.txt", b"written before versioning")
    t.close()
    seaweedfs.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    t.open()
    try:
        assert t.trash_mode() == "versioning"
        [k] = t.trash_list()
        assert (k.path, k.stamp, k.version) == ("early.txt", STAMP, None)
        assert fetched(t, k, tmp_path) == b"early"
        # the object from before versioning becomes a noncurrent version (id "null" on AWS)
        put(t, tmp_path, "pre.txt", b"after")
        [pre] = t.trash_list("pre.txt")
        assert (pre.why, pre.mtime_ns, pre.version is not None) == (OVERWRITTEN, NS, True)
        assert fetched(t, pre, tmp_path) == b"written before versioning"
        t.trash_restore(pre, "pre.txt")
        assert t.read("pre.txt") == b"written before versioning"
    finally:
        t.close()


# ---------------------------------------------------------------- failures
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_endpoint_is_retryable(seaweedfs, tmp_path):
    t = s3_on(seaweedfs, "nobucket", endpoint=f"http://127.0.0.1:{_free_port()}")
    kept = Kept("a", STAMP, DELETED, 1, NS, trash_rel(STAMP, DELETED, "a"))
    try:
        for action in (lambda: t.keep("a", stamp=STAMP, coming="absent"),
                       lambda: list(t.trash_list()), lambda: t.trash_purge([kept]),
                       lambda: t.trash_restore(kept, "a"),
                       lambda: t.trash_fetch(kept, str(tmp_path / "o"))):
            with pytest.raises(RetryableError) as info:
                action()
            assert seaweedfs.secret_key not in str(info.value)
    finally:
        t.close()


def test_a_missing_bucket_and_a_wrong_secret_are_permanent_and_never_shown(seaweedfs, tmp_path):
    wrong = "Wr0ngSecretValue" + "x" * 24
    kept = Kept("a", STAMP, DELETED, 1, NS, trash_rel(STAMP, DELETED, "a"))
    for t in (s3_on(seaweedfs, "no-such-bucket-here"),
              s3_on(seaweedfs, seaweedfs.new_bucket(), secret=wrong)):
        try:
            for action in (lambda: t.keep("d", stamp=STAMP, coming="absent"),
                           lambda: list(t.trash_list()), lambda: t.trash_purge([kept])):
                with pytest.raises(PermanentError) as info:
                    action()
                assert wrong not in str(info.value)
                assert seaweedfs.secret_key not in str(info.value)
        finally:
            t.close()


def test_bad_arguments_to_keep_are_permanent(s3):
    with pytest.raises(PermanentError):
        s3.keep("a", stamp=STAMP, coming="gone")
    with pytest.raises(PermanentError):
        s3.keep("a", stamp="yesterday/../x", coming="absent")


@pytest.mark.parametrize("name", ["with space/and space.png", "-e", "ünïcödé/Ωmega.pdf",
                                  "star*?[x].txt", "per%25cent%.jpg", "quote'\"s.txt"])
def test_versioned_odd_names_are_listed_fetched_restored_and_purged(vs3, tmp_path, name):
    data = name.encode() * 3
    put(vs3, tmp_path, name, data)
    vs3.delete(name)
    [k] = vs3.trash_list(name)
    assert (k.path, k.why, k.size) == (name, DELETED, len(data))
    assert fetched(vs3, k, tmp_path) == data
    vs3.trash_restore(k, name)
    assert vs3.read(name) == data
    vs3.trash_purge([k])
    assert list(vs3.trash_list()) == []
    assert vs3.read(name) == data


def test_within_one_server_second_a_delete_marker_orders_before_a_version():
    # SeaweedFS's LastModified has whole seconds; boto3 gives versions and markers apart.
    import datetime as dt

    sec = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.timezone.utc)

    def v(vid, latest, kind):
        return (sec, latest, kind, {"VersionId": vid, "Size": 1, "Key": "k"})

    # put v1, delete (marker m1), put v2 (current): v1 was deleted, never overwritten
    got = list(versioning._judge("k", [v("v2", True, 1), v("v1", False, 1),
                                          v("m1", False, 0)]))
    assert [(g[1], g[3]) for g in got] == [("v1", DELETED)]
    # put v1, put v2, delete (marker m1 current): v2 deleted, v1 overwritten
    got = list(versioning._judge("k", [v("v2", False, 1), v("v1", False, 1),
                                          v("m1", True, 0)]))
    assert [(g[1], g[3]) for g in got] == [("v2", DELETED), ("v1", OVERWRITTEN)]
    assert {g[2] for g in got} == {stamp_of(sec.timestamp())}


def test_versioned_trash_list_of_mirrords_own_area_is_empty(vs3):
    for _ in range(3):
        vs3.write_meta("heartbeat.json", b"beat")
    assert list(vs3.trash_list(".mirrord")) == []
    assert list(vs3.trash_list(".mirrord/heartbeat.json")) == []


def test_versioned_write_meta_leaves_no_trail_of_heartbeat_versions(vs3, seaweedfs):
    for i in range(4):
        vs3.write_meta("heartbeat.json", b"beat %d" % i)
    resp = seaweedfs.client().list_object_versions(
        Bucket=vs3.bucket, Prefix=vs3.root + ".mirrord/heartbeat.json")
    assert [v["IsLatest"] for v in resp.get("Versions", ())] == [True]
    assert vs3.read_meta("heartbeat.json") == b"beat 3"
