"""The S3 target's sync() batching plain deletes into DeleteObjects (mirrord/targets/s3/batch.py).

Against a real SeaweedFS: what is deleted, what stays, how many DeleteObjects calls
are made (counted with botocore's own `before-parameter-build` event), which items are left to
the one-by-one path. With a fake client standing in for botocore: the per-key error
shapes DeleteObjects answers with, and a failed call, mapped to per-item results
without a credential in any message.
"""

from __future__ import annotations

import os
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from mirrord.config import S3Options, SourceConfig
from mirrord.errors import PermanentError, RetryableError
from mirrord.journal import Op
from mirrord.targets.model import SyncItem
from mirrord.shipper import Shipper
from mirrord.targets.s3 import S3Target
from tests.targets.conftest import make_s3


def gone(path: str) -> SyncItem:
    return SyncItem(path, "absent")


@pytest.fixture
def s3(seaweedfs):
    t = make_s3(seaweedfs)
    t.open()
    yield t
    t.close()


def count_calls(t: S3Target, operation: str) -> list[dict]:
    calls: list[dict] = []
    t.client.meta.events.register(f"before-parameter-build.s3.{operation}",
                                  lambda params, **_: calls.append(params))
    return calls


def put_files(t: S3Target, tmp_path, paths: list[str]) -> None:
    for path in paths:
        local = tmp_path / "src"
        local.write_bytes(path.encode())
        t.put(path, str(local), size=len(path), mtime=1_600_000_000.0)


def test_plain_deletes_go_in_delete_objects_the_rest_one_by_one(s3, tmp_path):
    put_files(s3, tmp_path, ["a.txt", "d/b.txt", "d/c.txt", "keep.txt"])
    local = tmp_path / "new"
    local.write_bytes(b"new")
    batch_calls = count_calls(s3, "DeleteObjects")
    items = [gone("a.txt"), SyncItem("new.txt", "file", local=str(local), size=3,
                                     mtime=1_600_000_000.0),
             gone("d/b.txt"), gone("never-there.txt"), gone("d/c.txt")]
    results = s3.sync(items)
    assert [r.item for r in results] == items
    assert [r.error for r in results] == [None] * 5
    assert len(batch_calls) == 1
    assert sorted(o["Key"] for o in batch_calls[0]["Delete"]["Objects"]) == [
        "pre fix/a.txt", "pre fix/d/b.txt", "pre fix/d/c.txt", "pre fix/never-there.txt"]
    assert [e.path for e in s3.list()] == ["keep.txt", "new.txt"]
    assert results[1].entry is not None and results[1].entry.size == 3


def test_batches_hold_at_most_delete_batch_keys(s3, tmp_path):
    paths = [f"f{i}" for i in range(5)]
    put_files(s3, tmp_path, paths)
    s3.delete_batch = 2
    calls = count_calls(s3, "DeleteObjects")
    assert [r.error for r in s3.sync([gone(p) for p in paths])] == [None] * 5
    assert [len(c["Delete"]["Objects"]) for c in calls] == [2, 2, 1]
    assert list(s3.list()) == []


def test_single_delete_tree_and_repeated_paths_are_not_batched(s3, tmp_path):
    put_files(s3, tmp_path, ["one", "dir/x", "twice"])
    calls = count_calls(s3, "DeleteObjects")
    assert s3.sync([gone("one")])[0].error is None
    assert calls == []               # one delete: DeleteObject, not DeleteObjects
    local = tmp_path / "again"
    local.write_bytes(b"again")
    items = [gone("twice"), SyncItem("twice", "file", local=str(local), size=5,
                                     mtime=1_600_000_000.0),
             SyncItem("dir", "absent", tree=True)]
    assert [r.error for r in s3.sync(items)] == [None] * 3
    assert [(e.path, e.size) for e in s3.list()] == [("twice", 5)]   # the order was kept


def test_unsafe_path_fails_alone_unstorable_names_are_already_gone(s3, tmp_path):
    put_files(s3, tmp_path, ["ok1", "ok2"])
    latin1 = os.fsdecode(b"caf\xe9.txt")     # S3 keys are UTF-8: no object can have this name
    results = s3.sync([gone("ok1"), gone("../escape"), gone(latin1), gone("d/" + "x" * 1100),
                       gone("ok2")])
    assert [r.error is None for r in results] == [True, False, True, True, True]
    assert isinstance(results[1].error, PermanentError)
    assert list(s3.list()) == []


def test_the_shippers_batch_of_deletes_is_one_delete_objects(s3, tmp_path):
    """What the shipper hands over for files gone from the source arrives as plain deletes."""
    src = tmp_path / "source"
    src.mkdir()
    (src / "still-here.txt").write_bytes(b"here")
    put_files(s3, tmp_path, [f"gone{i}" for i in range(6)])
    shipper = Shipper({"s3": s3}, [SourceConfig("up", src, ("s3",))], {"s3": 1})
    calls = count_calls(s3, "DeleteObjects")
    ops = [Op(i + 1, 1, "s3", "up", f"gone{i}", "delete", None, False, False, 0, time.time(),
              None) for i in range(6)]
    ops.append(Op(7, 1, "s3", "up", "still-here.txt", "put", None, False, False, 0,
                  time.time(), None))
    try:
        outcomes = shipper.run_ops(s3, ops)
    finally:
        shipper.shutdown()
    assert [(o.error, o.shipped_kind) for o in outcomes] == [(None, "delete")] * 6 + [(None, "put")]
    assert len(calls) == 1 and len(calls[0]["Delete"]["Objects"]) == 6
    assert [e.path for e in s3.list()] == ["still-here.txt"]


# ------------------------------------------------------------ per-key errors, a fake client
SECRET = "sEcReT-kEy-for-batch-tests"


class FakeClient:
    """Stands in for botocore's client: answers DeleteObjects with `answer` (or raises it)."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[list[str]] = []

    def delete_objects(self, *, Bucket, Delete):
        self.calls.append([o["Key"] for o in Delete["Objects"]])
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def close(self):
        pass


def fake_target(answer) -> tuple[S3Target, FakeClient]:
    t = S3Target("fake", S3Options(bucket="b", prefix="p/", endpoint_url="http://127.0.0.1:9",
                                   access_key_id="AKIDFAKEBATCH", secret_access_key=SECRET))
    fake = FakeClient(answer)
    t._client = fake          # the `client` property returns it; nothing reaches a network
    return t, fake


def test_per_key_errors_map_to_their_items():
    answer = {"Errors": [
        {"Key": "p/denied", "Code": "AccessDenied", "Message": f"no; key {SECRET}"},
        {"Key": "p/slow", "Code": "SlowDown", "Message": "reduce your request rate"},
        {"Key": "p/absent", "Code": "NoSuchKey", "Message": "gone already"},
        {"Key": "p/not-asked", "Code": "InternalError"},
    ]}
    t, fake = fake_target(answer)
    results = t.sync([gone("ok"), gone("denied"), gone("slow"), gone("absent")])
    assert fake.calls == [["p/ok", "p/denied", "p/slow", "p/absent"]]
    ok, denied, slow, absent = (r.error for r in results)
    assert ok is None and absent is None
    assert isinstance(denied, PermanentError) and not isinstance(denied, RetryableError)
    assert "'denied'" in str(denied) and "AccessDenied" in str(denied)
    assert SECRET not in str(denied)
    assert isinstance(slow, RetryableError) and "SlowDown" in str(slow)


@pytest.mark.parametrize("exc, kind", [
    (ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "busy"},
                  "ResponseMetadata": {"HTTPStatusCode": 503}}, "DeleteObjects"),
     RetryableError),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), RetryableError),
    (ClientError({"Error": {"Code": "AccessDenied", "Message": f"key {SECRET}"},
                  "ResponseMetadata": {"HTTPStatusCode": 403}}, "DeleteObjects"),
     PermanentError),
])
def test_a_failed_call_fails_each_of_its_items(exc, kind):
    t, fake = fake_target(exc)
    t.delete_batch = 2
    results = t.sync([gone("a"), gone("b"), gone("c")])
    assert fake.calls == [["p/a", "p/b"], ["p/c"]]
    for result, path in zip(results, "abc"):
        assert type(result.error) is kind
        assert f"delete '{path}'" in str(result.error)
        assert SECRET not in str(result.error)
