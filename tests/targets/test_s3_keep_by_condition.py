"""keep_deleted on S3 by conditional writes (mirrord/targets/s3/conditional.py, issue 17),
through the real engine path (Shipper -> keeper.prepare -> S3Target.sync) against a
real SeaweedFS.

Every request the target sends is recorded at the wire boundary: botocore's
`before-send` event for the SDK (s3transfer's requests included) and LeanRequests._send
for the lean path. Each test asserts the exact request sequence, so a test of "no HEAD,
no listing" also sees the one conditional PUT it expects: it cannot pass because the
recorder saw nothing.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from botocore.awsrequest import AWSResponse

from mirrord.config import S3Options, SourceConfig, TargetConfig
from mirrord.errors import RetryableError
from mirrord.journal import Op
from mirrord.shipper import Shipper, serial
from mirrord.targets import create
from mirrord.targets.mtime import ns_to_float
from mirrord.targets.s3 import conditional, upload
from mirrord.trash.keeper import KeepPolicy
from mirrord.trash.model import DIR_REMOVED, OVERWRITTEN, stamp_of, trash_rel

S, T = "up", "s3"
WHEN = 1_795_000_000.25
STAMP = stamp_of(WHEN)
OLD_NS = 1_600_000_000_123_456_789
_ids = itertools.count(1)


def s3_on(seaweedfs, bucket: str, *, threshold: int = 8 << 20):
    cfg = TargetConfig(name=T, type="s3", workers=2, s3=S3Options(
        bucket=bucket, prefix="pre fix/", endpoint_url=seaweedfs.endpoint_url,
        region=seaweedfs.region, access_key_id=seaweedfs.access_key,
        secret_access_key=seaweedfs.secret_key, addressing_style="path",
        multipart_threshold=threshold, multipart_chunksize=5 << 20))
    t = create(cfg)
    t.open()
    return t


class Wire:
    """Every request `t` sends: (operation or lean method, the condition header sent)."""

    def __init__(self, t, monkeypatch):
        self.log: list[tuple[str, str | None]] = []
        t.client.meta.events.register("before-send.s3", self._sdk)
        if t._lean is not None:
            send = t._lean._send

            def lean_send(method, path, body, headers):
                self.log.append((f"lean {method}", _condition(headers)))
                return send(method, path, body, headers)
            monkeypatch.setattr(t._lean, "_send", lean_send)

    def _sdk(self, request, event_name, **kw):
        self.log.append((event_name.rsplit(".", 1)[-1], _condition(request.headers)))

    def ops(self) -> list[str]:
        return [op for op, _ in self.log]


def _condition(headers) -> str | None:
    for name in ("If-None-Match", "If-Match"):
        if headers.get(name) is not None:
            value = headers[name]
            return f"{name}: {value.decode() if isinstance(value, bytes) else value}"
    return None


@pytest.fixture(params=["lean", "sdk"])
def s3(request, seaweedfs):
    t = s3_on(seaweedfs, seaweedfs.new_bucket())
    t.client  # noqa: B018 - the lean path is made with the client
    if request.param == "sdk":
        t._lean = None                 # every put through the SDK
    else:
        assert t._lean is not None
    yield t
    t.close()


@pytest.fixture
def src(tmp_path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    return root


def ship(t, src: Path, path: str, *, tree: bool = False, when: float = WHEN):
    """The Shipper with keep_deleted on runs one put op; its Outcome."""
    shipper = Shipper({T: t}, [SourceConfig(S, src, (T,))], {T: 1}, executor=serial,
                      keep={T: KeepPolicy(3600.0)})
    op = Op(next(_ids), 1, T, S, path, "put", None, False, tree, 0, when)
    (out,) = shipper.run_ops(t, [op])
    return out


def seed(t, tmp_path, path: str, data: bytes, *, ns: int = OLD_NS) -> str:
    """The old object at `path` (mtime `ns`, mode 0640); its ETag."""
    f = tmp_path / f"seed-{next(_ids)}"
    f.write_bytes(data)
    os.utime(f, ns=(ns, ns))
    return t.put(path, str(f), size=len(data), mtime=ns_to_float(ns), mtime_ns=ns,
                 mode=0o640).token or ""


def write(src: Path, path: str, data: bytes) -> None:
    (src / path).parent.mkdir(parents=True, exist_ok=True)
    (src / path).write_bytes(data)


def raw(seaweedfs, t, path: str):
    return seaweedfs.client().get_object(Bucket=t.bucket, Key=t.root + path)


def trash_keys(seaweedfs, t) -> set[str]:
    resp = seaweedfs.client().list_objects_v2(Bucket=t.bucket, Prefix=t.root + ".mirrord/trash/")
    return {o["Key"][len(t.root):] for o in resp.get("Contents", ())}


def put_op(s3) -> str:
    return "lean PUT" if s3._lean is not None else "PutObject"


# ------------------------------------------------------------------ new files
def test_a_new_file_is_one_conditional_put_and_nothing_else(s3, src, seaweedfs, monkeypatch):
    assert s3.features.keep_by_condition
    write(src, "img/new.png", b"new bytes")
    wire = Wire(s3, monkeypatch)
    out = ship(s3, src, "img/new.png")
    assert out.error is None and out.shipped_kind == "put"
    assert wire.log == [(put_op(s3), "If-None-Match: *")], "no HEAD, no listing"
    assert raw(seaweedfs, s3, "img/new.png")["Body"].read() == b"new bytes"
    assert trash_keys(seaweedfs, s3) == set()


# ------------------------------------------------------------------ overwrites
def test_an_overwrite_keeps_the_old_bytes_and_mtime_once(s3, src, seaweedfs, tmp_path,
                                                         monkeypatch):
    old_etag = seed(s3, tmp_path, "doc/a.pdf", b"old pdf")
    write(src, "doc/a.pdf", b"NEW PDF BYTES")
    wire = Wire(s3, monkeypatch)
    out = ship(s3, src, "doc/a.pdf")
    assert out.error is None
    assert wire.log == [(put_op(s3), "If-None-Match: *"), ("HeadObject", None),
                        ("CopyObject", "If-None-Match: *"),
                        (put_op(s3), f"If-Match: {old_etag}")], "the 412 is not asked again"
    [kept] = list(s3.trash_list())
    assert (kept.path, kept.stamp, kept.why, kept.size, kept.mtime_ns, kept.mode) == (
        "doc/a.pdf", STAMP, OVERWRITTEN, 7, OLD_NS, 0o640)
    assert raw(seaweedfs, s3, kept.key)["Body"].read() == b"old pdf"
    assert raw(seaweedfs, s3, "doc/a.pdf")["Body"].read() == b"NEW PDF BYTES"


def test_a_retry_after_the_keep_but_before_the_put_keeps_nothing_twice(s3, src, seaweedfs,
                                                                       tmp_path, monkeypatch):
    seed(s3, tmp_path, "a.txt", b"old")
    write(src, "a.txt", b"new")
    real = upload.put_small
    dropped: list[dict] = []

    def dies_before_the_second_put(t, path, key, data, ns, mode, condition=None):
        if condition and "IfMatch" in condition and not dropped:
            dropped.append(condition)     # as if killed (or the connection lost) right here
            raise RetryableError("connection reset")
        return real(t, path, key, data, ns, mode, condition)
    monkeypatch.setattr(upload, "put_small", dies_before_the_second_put)
    first = ship(s3, src, "a.txt")
    assert first.error and "connection reset" in first.error and not first.permanent
    assert dropped and raw(seaweedfs, s3, "a.txt")["Body"].read() == b"old"
    assert len(trash_keys(seaweedfs, s3)) == 1, "kept before the put"

    write(src, "a.txt", b"newer")         # the retry ships what the source holds now
    wire = Wire(s3, monkeypatch)
    again = ship(s3, src, "a.txt")        # same row, same event time: same stamp
    assert again.error is None
    assert wire.ops()[1:3] == ["HeadObject", "CopyObject"]   # the copy met 412: kept already
    [kept] = list(s3.trash_list())
    assert raw(seaweedfs, s3, kept.key)["Body"].read() == b"old"
    assert kept.mtime_ns == OLD_NS
    assert raw(seaweedfs, s3, "a.txt")["Body"].read() == b"newer"


def _refuse_copies(t, **kw):
    """Make the server's answer to every CopyObject a 403 AccessDenied."""
    def refuse(**kwargs):
        return (AWSResponse("", 403, {}, None),
                {"Error": {"Code": "AccessDenied", "Message": "copy refused"},
                 "ResponseMetadata": {"HTTPStatusCode": 403}})
    t.client.meta.events.register("before-call.s3.CopyObject", refuse)


def test_a_refused_keep_fails_the_item_and_leaves_the_old_object(s3, src, seaweedfs, tmp_path,
                                                                 monkeypatch):
    seed(s3, tmp_path, "keep/me.txt", b"precious")
    write(src, "keep/me.txt", b"replacement")
    _refuse_copies(s3)
    wire = Wire(s3, monkeypatch)
    out = ship(s3, src, "keep/me.txt")
    assert out.error and "AccessDenied" in out.error and out.permanent
    assert seaweedfs.secret_key not in out.error and seaweedfs.access_key not in out.error
    assert wire.ops() == [put_op(s3), "HeadObject"], "no second put after the failed keep"
    obj = raw(seaweedfs, s3, "keep/me.txt")
    assert obj["Body"].read() == b"precious" and obj["Metadata"]["mtime"] == "1600000000.123456789"
    assert trash_keys(seaweedfs, s3) == set()


def test_a_trash_key_s3_cannot_hold_fails_the_item_and_overwrites_nothing(s3, src, seaweedfs,
                                                                          tmp_path):
    path = "d/" + "/".join(["n" * 200] * 5)   # its key fits in 1024 bytes, its trash key not
    seed(s3, tmp_path, path, b"old")
    write(src, path, b"new")
    out = ship(s3, src, path)
    assert out.error and "trash key" in out.error and out.permanent
    assert raw(seaweedfs, s3, path)["Body"].read() == b"old"


def test_another_writer_racing_the_keep_is_retried_later_not_looped(s3, src, seaweedfs,
                                                                    tmp_path, monkeypatch):
    seed(s3, tmp_path, "race.txt", b"v0")
    write(src, "race.txt", b"mine")
    other = seaweedfs.client()
    n = itertools.count(1)
    s3.client.meta.events.register(       # after each keep's copy, someone else writes the key
        "after-call.s3.CopyObject",
        lambda **kw: other.put_object(Bucket=s3.bucket, Key=s3.root + "race.txt",
                                      Body=b"theirs %d" % next(n)))
    wire = Wire(s3, monkeypatch)
    out = ship(s3, src, "race.txt")
    assert out.error and "changed while it was being kept" in out.error and not out.permanent
    assert wire.ops().count(put_op(s3)) == conditional.TRIES
    [kept] = list(s3.trash_list())
    assert raw(seaweedfs, s3, kept.key)["Body"].read() == b"v0", "kept once, under one stamp"
    assert raw(seaweedfs, s3, "race.txt")["Body"].read() != b"mine"


# ------------------------------------------------------------------ large files, trees
@pytest.mark.parametrize("size", [9 << 20, 6 << 20])   # one PutObject by s3transfer; multipart
def test_a_large_file_keeps_first_without_listing(seaweedfs, src, tmp_path, monkeypatch, size):
    t = s3_on(seaweedfs, seaweedfs.new_bucket(), threshold=(16 << 20) if size > 8 << 20
              else (5 << 20))
    try:
        old = os.urandom(size)
        seed(t, tmp_path, "v/big.bin", old)
        write(src, "v/big.bin", os.urandom(size))
        write(src, "v/fresh.bin", os.urandom(size))
        wire = Wire(t, monkeypatch)
        assert ship(t, src, "v/fresh.bin").error is None
        multipart = size < 8 << 20
        body = (["CreateMultipartUpload", "UploadPart", "UploadPart",
                 "CompleteMultipartUpload"] if multipart else ["PutObject"])
        assert wire.ops() == ["HeadObject"] + body + ["HeadObject"], "no listing"
        wire.log.clear()
        assert ship(t, src, "v/big.bin").error is None
        assert wire.ops()[:2] == ["HeadObject", "CopyObject"]
        [kept] = list(t.trash_list())
        assert (kept.why, kept.size, kept.mtime_ns) == (OVERWRITTEN, size, OLD_NS)
        assert raw(seaweedfs, t, kept.key)["Body"].read() == old
        assert raw(seaweedfs, t, "v/big.bin")["Body"].read() == (src / "v/big.bin").read_bytes()
    finally:
        t.close()



@pytest.mark.parametrize("size", [4096, 9 << 20])   # a conditional put; keep_before's copy
def test_other_bytes_under_the_same_size_and_mtime_are_kept(seaweedfs, src, tmp_path, size):
    """A file rewritten in place with its size kept and its mtime put back: the object's
    sha256 metadata tells it from a re-send, so the old bytes are kept (a small put's
    conditional keep; a large put's copy is not dropped as a duplicate), and the same
    bytes shipped again keep nothing more (a review, helper-155)."""
    t = s3_on(seaweedfs, seaweedfs.new_bucket(), threshold=16 << 20)
    try:
        old, new = os.urandom(size), os.urandom(size)
        seed(t, tmp_path, "v/f.bin", old)
        write(src, "v/f.bin", new)
        os.utime(src / "v/f.bin", ns=(OLD_NS, OLD_NS))
        assert ship(t, src, "v/f.bin").error is None
        assert raw(seaweedfs, t, "v/f.bin")["Body"].read() == new
        [kept] = list(t.trash_list())
        assert (kept.why, kept.size, kept.mtime_ns) == (OVERWRITTEN, size, OLD_NS)
        assert raw(seaweedfs, t, kept.key)["Body"].read() == old
        assert ship(t, src, "v/f.bin", when=WHEN + 60).error is None   # a re-send
        assert [k.key for k in t.trash_list()] == [kept.key]
    finally:
        t.close()


def test_a_tree_file_item_over_keys_below_keeps_them(s3, src, seaweedfs, tmp_path):
    for p in ("d/x.txt", "d/e/y.txt"):
        seed(s3, tmp_path, p, p.encode())
    write(src, "d", b"a file where a directory was")
    out = ship(s3, src, "d", tree=True)
    assert out.error is None
    assert {e.path for e in s3.list()} == {"d"}
    assert trash_keys(seaweedfs, s3) == {trash_rel(STAMP, DIR_REMOVED, "d/x.txt"),
                                         trash_rel(STAMP, DIR_REMOVED, "d/e/y.txt")}


def test_a_plain_put_never_touches_keys_below_its_path(s3, src, seaweedfs, tmp_path,
                                                       monkeypatch):
    seed(s3, tmp_path, "p/below.txt", b"below")
    write(src, "p", b"a file named like the prefix")
    wire = Wire(s3, monkeypatch)
    assert ship(s3, src, "p").error is None
    # SeaweedFS answers 412 to If-None-Match: * on a key naming a filer directory while
    # HEAD says 404 (AWS would store at once): then one unconditional put, no listing
    assert wire.log == [(put_op(s3), "If-None-Match: *"), ("HeadObject", None),
                        (put_op(s3), None)]
    assert {e.path for e in s3.list()} == {"p", "p/below.txt"}
    assert s3.read("p/below.txt") == b"below"
    assert trash_keys(seaweedfs, s3) == set()


def test_a_file_where_a_removed_directory_was_is_stored(s3, src, seaweedfs, tmp_path):
    seed(s3, tmp_path, "q/r/s.txt", b"s")
    s3.delete("q/r/s.txt")             # SeaweedFS keeps the empty filer directory q/r
    write(src, "q/r", b"now a file")
    out = ship(s3, src, "q/r")
    assert out.error is None, "no 412 loop"
    assert s3.read("q/r") == b"now a file" and trash_keys(seaweedfs, s3) == set()


# ------------------------------------------------------------------ versioning
def versioned(seaweedfs):
    bucket = seaweedfs.new_bucket()
    seaweedfs.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return s3_on(seaweedfs, bucket)


def test_a_versioned_bucket_copies_nothing_and_keeps_the_old_version(seaweedfs, src,
                                                                      tmp_path, monkeypatch):
    t = versioned(seaweedfs)
    try:
        assert t.trash_mode() == "versioning" and t.features.keep_by_condition
        seed(t, tmp_path, "v.txt", b"v1")
        write(src, "v.txt", b"v2")
        write(src, "w.txt", b"new")
        wire = Wire(t, monkeypatch)
        assert ship(t, src, "v.txt").error is None and ship(t, src, "w.txt").error is None
        # a new file: one conditional put; an overwrite: 412, HEAD, the put of that version
        # (conditional.same_version) and no copy: the old version is the kept one
        assert [(op, (cond or "")[:9]) for op, cond in wire.log] == [
            (put_op(t), "If-None-M"), ("HeadObject", ""), (put_op(t), "If-Match:"),
            (put_op(t), "If-None-M")], wire.log
        [kept] = list(t.trash_list())
        assert (kept.path, kept.why, kept.mtime_ns) == ("v.txt", OVERWRITTEN, OLD_NS)
        assert t.read("v.txt") == b"v2" and trash_keys(seaweedfs, t) == set()
    finally:
        t.close()


def test_a_versioned_bucket_keeps_no_resent_version(seaweedfs, src, tmp_path, monkeypatch):
    """A put of the very version the bucket holds (a re-send: same bytes, size and mtime)
    left that version noncurrent, listed as 'overwritten', where the other targets keep
    nothing (README); a put of other bytes with the same size and mtime is still kept."""
    t = versioned(seaweedfs)
    try:
        seed(t, tmp_path, "same.txt", b"same bytes")
        write(src, "same.txt", b"same bytes")
        os.utime(src / "same.txt", ns=(OLD_NS, OLD_NS))
        os.chmod(src / "same.txt", 0o640)
        wire = Wire(t, monkeypatch)
        assert ship(t, src, "same.txt").error is None
        assert wire.ops()[-1] == "DeleteObject", wire.log
        assert list(t.trash_list()) == [] and t.read("same.txt") == b"same bytes"

        # the same bytes under a new mtime (a touch seen live as a write, helper-161):
        # the version replaced is deleted too, and the object takes the new mtime
        os.utime(src / "same.txt", ns=(OLD_NS + 10**9 + 3, OLD_NS + 10**9 + 3))
        assert ship(t, src, "same.txt").error is None
        assert wire.ops()[-1] == "DeleteObject", wire.log
        assert list(t.trash_list()) == [] and t.stat("same.txt").mtime_ns == OLD_NS + 10**9 + 3

        write(src, "same.txt", b"SAME BYTES")              # other bytes, same size and mtime
        os.utime(src / "same.txt", ns=(OLD_NS, OLD_NS))
        assert ship(t, src, "same.txt").error is None
        [kept] = list(t.trash_list())
        assert (kept.path, kept.why) == ("same.txt", OVERWRITTEN)
        fetched = tmp_path / "fetched"
        t.trash_fetch(kept, str(fetched))
        assert fetched.read_bytes() == b"same bytes"
    finally:
        t.close()


# ------------------------------------------------------------------ answers, classified
def test_a_lean_412_is_its_own_answer_and_the_conflict_409_is_retryable():
    from botocore.exceptions import ClientError

    from mirrord.errors import PermanentError
    from mirrord.targets.s3.errors import PreconditionFailed, classify
    from mirrord.targets.s3.lean_answers import succeeded

    body = b"<Error><Code>PreconditionFailed</Code><Message>did not hold</Message></Error>"
    with pytest.raises(ClientError) as info:
        succeeded(412, "Precondition Failed", body, "PutObject")
    err = classify(info.value, "put 'a'")
    assert isinstance(err, PreconditionFailed) and isinstance(err, PermanentError)
    assert succeeded(403, "Forbidden", b"", "PutObject") is False, "others: the SDK answers"
    conflict = ClientError({"Error": {"Code": "ConditionalRequestConflict", "Message": "m"},
                            "ResponseMetadata": {"HTTPStatusCode": 409}}, "PutObject")
    assert isinstance(classify(conflict, "put 'a'"), RetryableError)
