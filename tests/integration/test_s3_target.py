"""What the S3 target promises beyond the conformance suite, checked against a real SeaweedFS.

Objects are inspected with a plain boto3 client, not through the target, so
these tests see what rclone or a web server would see.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from mirrord.config import S3Options
from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.model import SyncItem
from mirrord.targets.mtime import exact_ns
from mirrord.targets.s3 import S3Target, format_mtime
from mirrord.treewalk import entry_key, file_digest

MTIME = 1_650_000_000.123456
PREFIX = "site/uploads/"


def options(seaweedfs, bucket: str, **kw) -> S3Options:
    base = dict(bucket=bucket, prefix=PREFIX, endpoint_url=seaweedfs.endpoint_url,
                region=seaweedfs.region, access_key_id=seaweedfs.access_key,
                secret_access_key=seaweedfs.secret_key, addressing_style="path",
                multipart_threshold=6 << 20, multipart_chunksize=5 << 20)
    base.update(kw)
    return S3Options(**base)


@pytest.fixture
def bucket(seaweedfs):
    return seaweedfs.new_bucket()


@pytest.fixture
def s3(seaweedfs, bucket):
    t = S3Target("s3", options(seaweedfs, bucket), workers=4)
    t.open()
    yield t
    t.close()


@pytest.fixture
def raw(seaweedfs):
    return seaweedfs.client()


def local_file(tmp_path, data: bytes, mtime: float = MTIME, name: str = "src") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    os.utime(p, (mtime, mtime))
    return str(p)


def put(s3, tmp_path, path: str, data: bytes, mtime: float = MTIME):
    return s3.put(path, local_file(tmp_path, data, mtime, name=str(abs(hash(path)))),
                  size=len(data), mtime=mtime)


def raw_keys(raw, bucket: str) -> list[str]:
    pages = raw.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", ())]


# ----------------------------------------------------------------- what is stored


@pytest.mark.parametrize("name,ctype", [
    ("img/photo.JPG", "image/jpeg"), ("docs/report.pdf", "application/pdf"),
    ("a b/page.html", "text/html"), ("x/archive.tar.gz", "application/gzip"),
    ("README", "application/octet-stream"),
])
def test_content_type_from_the_file_name(s3, raw, bucket, tmp_path, name, ctype):
    put(s3, tmp_path, name, b"data")
    assert raw.head_object(Bucket=bucket, Key=PREFIX + name)["ContentType"] == ctype


def test_mtime_and_sha256_metadata_match_the_source(s3, raw, bucket, tmp_path):
    src = local_file(tmp_path, b"content" * 100)
    entry = s3.put("dir/f.txt", src, size=700, mtime=os.stat(src).st_mtime)
    meta = raw.head_object(Bucket=bucket, Key=PREFIX + "dir/f.txt")["Metadata"]
    assert meta["mtime"] == format_mtime(os.stat(src).st_mtime_ns)
    assert float(meta["mtime"]) == os.stat(src).st_mtime == MTIME
    assert meta["sha256"] == file_digest(src) == s3.checksum("dir/f.txt")
    assert s3.stat("dir/f.txt").mtime == MTIME
    assert entry.token == raw.head_object(Bucket=bucket, Key=PREFIX + "dir/f.txt")["ETag"]


def test_multipart_above_the_threshold_and_not_below(s3, raw, bucket, tmp_path):
    big = os.urandom(13 << 20)      # threshold 6 MiB, parts of 5 MiB -> 3 parts
    entry = put(s3, tmp_path, "big/blob.bin", big)
    small = put(s3, tmp_path, "big/small.bin", b"x" * (1 << 20))
    head = raw.head_object(Bucket=bucket, Key=PREFIX + "big/blob.bin")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert "-" not in small.token
    assert entry.size == len(big) and entry.token == head["ETag"]
    assert raw.get_object(Bucket=bucket, Key=PREFIX + "big/blob.bin")["Body"].read() == big
    assert head["Metadata"]["mtime"] == format_mtime(exact_ns(MTIME))
    assert head["Metadata"]["sha256"] == s3.checksum("big/blob.bin")
    assert head["ContentType"] == "application/octet-stream"
    # no multipart upload is left behind
    assert raw.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_keys_are_exactly_prefix_plus_path(s3, raw, bucket, tmp_path):
    names = ["with space.png", "per%25cent%.jpg", "plus+sign.gif", "-e", "--rsh=evil",
             "ünïcödé/Ωmega.pdf", "a/b/c?d#e&f=g.txt", "tilde~/x y/+z"]
    for name in names:
        put(s3, tmp_path, name, name.encode())
    assert sorted(raw_keys(raw, bucket)) == sorted(PREFIX + n for n in names)
    assert sorted(e.path for e in s3.list()) == sorted(names)


def test_objects_are_private(s3, raw, bucket, seaweedfs, tmp_path):
    put(s3, tmp_path, "secret.txt", b"not for you")
    grants = raw.get_object_acl(Bucket=bucket, Key=PREFIX + "secret.txt")["Grants"]
    uris = {g["Grantee"].get("URI", "") for g in grants}
    assert not any(u.endswith(("/AllUsers", "/AuthenticatedUsers")) for u in uris)
    anonymous = boto3.session.Session().client(
        "s3", endpoint_url=seaweedfs.endpoint_url, region_name=seaweedfs.region,
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}))
    with pytest.raises(ClientError) as info:
        anonymous.get_object(Bucket=bucket, Key=PREFIX + "secret.txt")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] in (401, 403)


def test_heartbeat_lives_in_own_area_and_is_never_listed(s3, raw, bucket):
    s3.write_meta("heartbeat.json", b'{"t": 1}')
    assert PREFIX + ".mirrord/heartbeat.json" in raw_keys(raw, bucket)
    assert list(s3.list()) == []
    assert s3.read_meta("heartbeat.json") == b'{"t": 1}'


# ----------------------------------------------------------------- listing


def test_listing_is_byte_ordered_on_a_server_that_lists_otherwise(s3, tmp_path):
    # SeaweedFS lists the keys of "a/" at the position of "a", before "a-b": the walk fixes it
    names = ["a/x", "a-b", "a.b", "a0", "a/y/z", "a", "b", "ab/c", "ab-", "é/1", "z"]
    for name in names:
        put(s3, tmp_path, name, b"1")
    entries = list(s3.list())
    assert [entry_key(e) for e in entries] == sorted(os.fsencode(n) for n in names)
    assert all(e.mtime > 0 and e.token for e in entries)
    assert [e.path for e in s3.list("a")] == ["a", "a/x", "a/y/z"]
    assert [e.path for e in s3.list("ab")] == ["ab/c"]


def test_flat_listing_refuses_to_yield_out_of_order(seaweedfs, bucket, tmp_path):
    flat = S3Target("s3", options(seaweedfs, bucket), list_mode="flat")
    for name in ["a/x", "a-b"]:
        put(flat, tmp_path, name, b"1")
    with pytest.raises(PermanentError, match="out of order"):
        list(flat.list())


def test_folder_markers_are_not_files(s3, raw, bucket, tmp_path):
    put(s3, tmp_path, "d/file", b"1")
    raw.put_object(Bucket=bucket, Key=PREFIX + "d/empty/", Body=b"")
    assert [e.path for e in s3.list()] == ["d/file"]


# ----------------------------------------------------------------- moves and deletes


def test_move_keeps_metadata_and_content_type(s3, raw, bucket, tmp_path):
    put(s3, tmp_path, "old/pic.png", b"png")
    put(s3, tmp_path, "old/sub/doc.pdf", b"pdf", mtime=MTIME + 1)
    s3.move("old", "new")
    assert sorted(raw_keys(raw, bucket)) == [PREFIX + "new/pic.png", PREFIX + "new/sub/doc.pdf"]
    head = raw.head_object(Bucket=bucket, Key=PREFIX + "new/sub/doc.pdf")
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"]["mtime"] == format_mtime(exact_ns(MTIME + 1))
    assert s3.stat("new/pic.png").mtime == MTIME
    with pytest.raises(NotFound):
        s3.move("old", "again")


def test_move_above_the_copy_limit_uses_multipart_copy(s3, raw, bucket, tmp_path):
    data = os.urandom(11 << 20)
    put(s3, tmp_path, "huge.bin", data)
    s3.copy_limit = 5 << 20        # stands in for CopyObject's 5 GiB limit
    s3.move("huge.bin", "moved/huge.bin")
    head = raw.head_object(Bucket=bucket, Key=PREFIX + "moved/huge.bin")
    assert "-" in head["ETag"]
    assert head["Metadata"]["mtime"] == format_mtime(exact_ns(MTIME))
    assert head["Metadata"]["sha256"] == file_digest(tmp_path / str(abs(hash("huge.bin"))))
    assert raw.get_object(Bucket=bucket, Key=PREFIX + "moved/huge.bin")["Body"].read() == data
    assert s3.stat("huge.bin") is None


def test_delete_tree_of_more_than_one_page(s3, raw, bucket):
    keys = [f"{PREFIX}t/{i // 100:02d}/{i:04d}" for i in range(1010)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: raw.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    raw.put_object(Bucket=bucket, Key=PREFIX + "tt", Body=b"keep")
    s3.delete("t", tree=True)
    assert raw_keys(raw, bucket) == [PREFIX + "tt"]


# ----------------------------------------------------------------- names S3 cannot hold


def test_unstorable_names_fail_alone_in_a_batch(s3, tmp_path):
    src = local_file(tmp_path, b"ok")
    latin1 = os.fsdecode(b"caf\xe9.txt")
    too_long = "d/" + "x" * 1100
    items = [SyncItem("good/1.txt", "file", src, 2, MTIME),
             SyncItem(latin1, "file", src, 2, MTIME),
             SyncItem(too_long, "file", src, 2, MTIME),
             SyncItem("good/2.txt", "file", src, 2, MTIME)]
    results = s3.sync(items)
    errors = {r.item.path: r.error for r in results if r.error is not None}
    assert set(errors) == {latin1, too_long}
    assert all(isinstance(e, PermanentError) for e in errors.values())
    assert r"caf\xe9.txt" in str(errors[latin1])
    assert "1024" in str(errors[too_long])
    assert [e.path for e in s3.list()] == ["good/1.txt", "good/2.txt"]


# ----------------------------------------------------------------- the lean small put


def count_lean_calls(s3, monkeypatch, method: str = "put") -> list[str]:
    calls: list[str] = []
    s3.client  # noqa: B018 - the lean path is made with the client
    original = getattr(s3._lean, method)
    monkeypatch.setattr(s3._lean, method,
                        lambda key, *a, **kw: calls.append(key) or original(key, *a, **kw))
    return calls


@pytest.mark.parametrize("lean", [True, False])
def test_remove_file_at_asks_with_one_head_and_deletes_only_a_file(s3, raw, bucket, tmp_path,
                                                                   monkeypatch, lean):
    """A directory made where a file stands (remove_file_at): the file goes; where keys
    stand below the name (a folder), or nothing does, nothing is deleted. Lean: one HEAD of
    its own per call, none through the SDK; without it the SDK's HeadObject answers."""
    if not lean:
        s3.client  # noqa: B018 - made with the client
        s3._lean = None
    put(s3, tmp_path, "was-file", b"f")
    put(s3, tmp_path, "folder/inside", b"i")
    heads = count_lean_calls(s3, monkeypatch, "exists") if lean else []
    ops = count_requests(s3)
    s3.remove_file_at("was-file")
    s3.remove_file_at("folder")
    s3.remove_file_at("never-there")
    keys = {o["Key"] for o in raw.list_objects_v2(Bucket=bucket, Prefix=PREFIX).get("Contents", [])}
    assert PREFIX + "was-file" not in keys and PREFIX + "folder/inside" in keys
    if lean:
        assert heads == [PREFIX + "was-file", PREFIX + "folder", PREFIX + "never-there"]
        assert "HeadObject" not in ops
    else:
        assert ops.count("HeadObject") == 3


def test_small_puts_take_the_lean_path_and_store_what_the_sdk_stores(s3, raw, bucket, tmp_path,
                                                                      monkeypatch):
    calls = count_lean_calls(s3, monkeypatch)
    lean = put(s3, tmp_path, "lean/ä b+c%.png", b"same bytes")
    assert calls == [PREFIX + "lean/ä b+c%.png"]
    s3._lean = None                                  # the same put through the SDK
    sdk = put(s3, tmp_path, "sdk/ä b+c%.png", b"same bytes")
    heads = [raw.head_object(Bucket=bucket, Key=PREFIX + k) for k in ("lean/ä b+c%.png",
                                                                       "sdk/ä b+c%.png")]
    fields = [(h["ContentType"], h["ContentLength"], h["Metadata"], h["ETag"]) for h in heads]
    assert fields[0] == fields[1] and fields[0][0] == "image/png"
    assert lean.token == sdk.token == heads[0]["ETag"]


def test_deletes_take_the_lean_path_present_or_not(s3, raw, bucket, tmp_path, monkeypatch):
    calls = count_lean_calls(s3, monkeypatch, "delete")
    put(s3, tmp_path, "d/a b.txt", b"1")
    s3.delete("d/a b.txt")
    s3.delete("d/never there.txt")
    assert calls == [PREFIX + "d/a b.txt", PREFIX + "d/never there.txt"]
    assert raw_keys(raw, bucket) == [] and s3._lean is not None


def test_a_connection_the_server_closed_is_replaced_without_an_error(s3, seaweedfs, tmp_path,
                                                                     monkeypatch):
    calls = count_lean_calls(s3, monkeypatch)
    put(s3, tmp_path, "one.txt", b"1")                # this thread now keeps a connection
    seaweedfs.stop()
    seaweedfs.start()                                 # ... which the restart closed
    put(s3, tmp_path, "two.txt", b"2")
    assert s3.read("two.txt") == b"2" and len(calls) == 2 and s3._lean is not None


def test_lean_refusal_where_the_sdk_succeeds_switches_to_the_sdk(s3, seaweedfs, tmp_path, caplog):
    from botocore.credentials import Credentials
    s3.client  # noqa: B018
    s3._lean.credentials = Credentials(seaweedfs.access_key, "not-the-secret")
    with caplog.at_level("WARNING", logger="mirrord.targets.s3"):
        put(s3, tmp_path, "a.txt", b"stored anyway")
        put(s3, tmp_path, "b.txt", b"and this")
    assert s3.read("a.txt") == b"stored anyway" and s3.read("b.txt") == b"and this"
    assert s3._lean is None
    warnings = [r.getMessage() for r in caplog.records if "lean request" in r.getMessage()]
    assert len(warnings) == 1 and "a.txt" in warnings[0]
    assert seaweedfs.secret_key not in caplog.text


# ----------------------------------------------------------------- failures


# "bounded": every op must end in RetryableError (connect refused, one retry at most) instead
# of hanging; the test's own timeout is the bound, never a measured duration.
@pytest.mark.timeout(120)
def test_server_down_is_retryable_and_bounded_then_recovers(s3, seaweedfs, tmp_path):
    put(s3, tmp_path, "before.txt", b"1")          # the pool holds a live connection now
    src = local_file(tmp_path, b"during")
    seaweedfs.stop()
    try:
        ops = [lambda: s3.put("x.txt", src, size=6, mtime=MTIME), lambda: s3.stat("before.txt"),
               lambda: s3.read("before.txt"), lambda: list(s3.list()),
               lambda: s3.delete("before.txt"), lambda: s3.move("before.txt", "after.txt"),
               lambda: s3.write_meta("heartbeat.json", b"{}"), s3.open,
               lambda: s3.set_meta("before.txt", mode=0o600, mtime_ns=1)]
        for op in ops:
            with pytest.raises(RetryableError):
                op()
    finally:
        seaweedfs.start()
    put(s3, tmp_path, "x.txt", b"after")
    assert s3.read("x.txt") == b"after" and s3.read("before.txt") == b"1"


# A stopped (SIGSTOP) server accepts connections but never answers: only the read timeout
# can end these calls, so "timed out" in the RetryableError proves they did not hang; the
# test's timeout bounds the whole run.
@pytest.mark.timeout(60)
def test_hung_server_times_out_as_retryable(seaweedfs, bucket, tmp_path):
    t = S3Target("s3", options(seaweedfs, bucket), connect_timeout=1, read_timeout=1)
    t.open()
    src = local_file(tmp_path, b"x")
    os.killpg(seaweedfs.proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(RetryableError, match="(?i)timeout|timed out"):
            t.stat("anything")
        with pytest.raises(RetryableError, match="(?i)timeout|timed out"):
            t.put("small.txt", src, size=1, mtime=MTIME)     # the lean path's own timeout
    finally:
        os.killpg(seaweedfs.proc.pid, signal.SIGCONT)
    assert t.stat("anything") is None


def test_deleted_bucket_is_permanent(s3, raw, bucket, tmp_path):
    put(s3, tmp_path, "a.txt", b"1")
    raw.delete_object(Bucket=bucket, Key=PREFIX + "a.txt")
    raw.delete_bucket(Bucket=bucket)
    src = local_file(tmp_path, b"x")
    for op in (lambda: s3.put("b.txt", src, size=1, mtime=MTIME), lambda: list(s3.list()),
               lambda: s3.read("a.txt"), lambda: s3.write_meta("heartbeat.json", b"{}"),
               lambda: s3.delete("a.txt"), s3.open):
        with pytest.raises(PermanentError) as info:
            op()
        assert "NoSuchBucket" in str(info.value)


@pytest.mark.parametrize("wrong", ["secret", "access"])
def test_bad_credentials_are_permanent_and_never_shown(seaweedfs, bucket, tmp_path, wrong):
    access = seaweedfs.access_key + ("X" if wrong == "access" else "")
    secret = seaweedfs.secret_key + ("X" if wrong == "secret" else "")
    t = S3Target("s3", options(seaweedfs, bucket, access_key_id=access, secret_access_key=secret))
    src = local_file(tmp_path, b"x")
    for op in (t.open, lambda: t.put("a.txt", src, size=1, mtime=MTIME), lambda: list(t.list()),
               lambda: t.read("a.txt")):
        with pytest.raises(PermanentError) as info:
            op()
        exc = info.value
        text = f"{exc} {exc!r} {exc.args}"
        assert "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text or "AccessDenied" in text
        for cred in (access, secret, seaweedfs.access_key, seaweedfs.secret_key):
            assert cred not in text
        assert exc.__cause__ is None and exc.__suppress_context__
    assert t.describe() == f"s3:s3(s3://{bucket}/{PREFIX})"


# ----------------------------------------------------------------- modes and set_meta

NS = 1_650_000_000_123_456_789


def mode_file(tmp_path, data: bytes, mode: int, name: str = "m") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    os.chmod(p, mode)
    os.utime(p, ns=(NS, NS))
    return str(p)


def count_requests(s3) -> list[str]:
    """Every operation the SDK client sends (the lean path is counted separately)."""
    ops: list[str] = []
    s3.client.meta.events.register("before-call.s3", lambda model, **_: ops.append(model.name))
    return ops


@pytest.mark.parametrize("lean", [True, False])
def test_mode_and_exact_mtime_are_stored_as_rclone_does(s3, raw, bucket, tmp_path, lean):
    if not lean:
        s3.client  # noqa: B018 - made with the client
        s3._lean = None
    s3.put("p.txt", mode_file(tmp_path, b"x", 0o640), size=1, mtime=NS / 1e9, mtime_ns=NS)
    meta = raw.head_object(Bucket=bucket, Key=PREFIX + "p.txt")["Metadata"]
    assert meta["mode"] == "0100640"                  # rclone: octal, unix style, type bits
    assert meta["mtime"] == "1650000000.123456789"    # 9 places, from the integer ns
    st = s3.stat("p.txt")
    assert (st.mode, st.mtime_ns) == (0o640, NS)


def test_set_meta_is_one_self_copy_keeping_sha256_and_content_type(s3, raw, bucket, tmp_path,
                                                                   monkeypatch):
    s3.put("doc.pdf", mode_file(tmp_path, b"%PDF body", 0o644), size=9, mtime=NS / 1e9)
    before = raw.head_object(Bucket=bucket, Key=PREFIX + "doc.pdf")
    lean_puts = count_lean_calls(s3, monkeypatch)
    ops = count_requests(s3)
    entry = s3.set_meta("doc.pdf", mode=0o600, mtime_ns=NS + 5)
    assert ops == ["HeadObject", "CopyObject"] and lean_puts == []   # the body is not re-sent
    head = raw.head_object(Bucket=bucket, Key=PREFIX + "doc.pdf")
    assert head["Metadata"] == dict(before["Metadata"], mode="0100600",
                                    mtime="1650000000.123456794")
    assert head["ContentType"] == "application/pdf" and head["ETag"] == before["ETag"]
    assert (entry.mode, entry.mtime_ns) == (0o600, NS + 5)
    s3.set_meta("doc.pdf", mode=0o644, mtime_ns=NS)
    st = s3.stat("doc.pdf")
    assert (st.mode, st.mtime_ns) == (0o644, NS)
    assert s3.read("doc.pdf") == b"%PDF body"
    assert s3.checksum("doc.pdf") == before["Metadata"]["sha256"]


def test_set_meta_above_the_copy_limit_uses_multipart_copy(s3, raw, bucket, tmp_path):
    data = os.urandom(11 << 20)
    s3.put("huge.bin", mode_file(tmp_path, data, 0o644), size=len(data), mtime=NS / 1e9)
    s3.copy_limit = 5 << 20        # stands in for CopyObject's 5 GiB limit
    s3.set_meta("huge.bin", mode=0o600, mtime_ns=NS + 1)
    head = raw.head_object(Bucket=bucket, Key=PREFIX + "huge.bin")
    assert head["Metadata"]["mode"] == "0100600"
    assert head["Metadata"]["sha256"] == file_digest(tmp_path / "m")
    assert s3.stat("huge.bin").mtime_ns == NS + 1
    assert raw.get_object(Bucket=bucket, Key=PREFIX + "huge.bin")["Body"].read() == data


def test_move_keeps_the_mode(s3, tmp_path):
    s3.put("a", mode_file(tmp_path, b"1", 0o600), size=1, mtime=NS / 1e9)
    s3.move("a", "b")
    assert s3.stat("b").mode == 0o600


def test_objects_without_mode_metadata_report_none(s3, raw, bucket):
    raw.put_object(Bucket=bucket, Key=PREFIX + "foreign", Body=b"f")
    st = s3.stat("foreign")
    assert st.mode is None and st.mtime_ns == 0
    assert [e.mode for e in s3.list()] == [None]


def test_set_meta_never_labels_new_bytes_with_the_old_sha256(s3, raw, bucket, tmp_path,
                                                              monkeypatch):
    s3.put("race", mode_file(tmp_path, b"old", 0o644), size=3, mtime=NS / 1e9)
    stale = raw.head_object(Bucket=bucket, Key=PREFIX + "race")
    s3.put("race", mode_file(tmp_path, b"new bytes", 0o644, name="n"), size=9, mtime=NS / 1e9)
    monkeypatch.setattr(s3, "_head", lambda path, key: stale)   # HEAD, then a put, then the copy
    with pytest.raises(RetryableError, match="changed"):
        s3.set_meta("race", mode=0o600, mtime_ns=NS)
    monkeypatch.undo()
    assert s3.checksum("race") == file_digest(tmp_path / "n") and s3.stat("race").mode == 0o644


# ----------------------------------------------------------------- what a crash leaves


def open_uploads(raw, bucket: str) -> list[tuple[str, str]]:
    pages = raw.get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
    return [(u["Key"], u["UploadId"]) for page in pages for u in page.get("Uploads", ())]


def test_open_aborts_the_multipart_uploads_a_crash_left_under_the_prefix(seaweedfs, bucket, raw):
    # what a kill -9 mid-upload leaves: an upload created, a part stored, never completed
    left = raw.create_multipart_upload(Bucket=bucket, Key=PREFIX + "big/video.webm")
    raw.upload_part(Bucket=bucket, Key=PREFIX + "big/video.webm", UploadId=left["UploadId"],
                    PartNumber=1, Body=b"x" * (5 << 20))
    other = raw.create_multipart_upload(Bucket=bucket, Key="elsewhere/not-ours.bin")
    assert len(open_uploads(raw, bucket)) == 2
    t = S3Target("s3", options(seaweedfs, bucket))
    try:
        t.open()
        assert open_uploads(raw, bucket) == [("elsewhere/not-ours.bin", other["UploadId"])]
        assert t.abort_open_uploads() == 0      # nothing left: the sweep is idempotent
    finally:
        t.close()
    raw.abort_multipart_upload(Bucket=bucket, Key="elsewhere/not-ours.bin",
                               UploadId=other["UploadId"])


def test_open_leaves_uploads_alone_while_another_process_has_the_target_open(
        seaweedfs, bucket, raw, tmp_path):
    """`mirrord reconcile` opens the targets while the daemon runs: it must not abort the
    daemon's upload in flight. Another process holding the target open is simulated by a
    second process holding the target's open lock (flock is per open file description)."""
    import subprocess
    import sys
    from mirrord.targets.sweep import lock_path
    identity = f"s3:{seaweedfs.endpoint_url}/{bucket}/{PREFIX}"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | "
         "os.O_CREAT, 0o600); fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); "
         "sys.stdin.read()", lock_path(identity)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        live = raw.create_multipart_upload(Bucket=bucket, Key=PREFIX + "in-flight.bin")
        t = S3Target("s3", options(seaweedfs, bucket))
        try:
            t.open()
            assert open_uploads(raw, bucket) == [(PREFIX + "in-flight.bin", live["UploadId"])]
        finally:
            t.close()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    t = S3Target("s3", options(seaweedfs, bucket))   # alone now: the next start sweeps
    try:
        t.open()
        assert open_uploads(raw, bucket) == []
    finally:
        t.close()
