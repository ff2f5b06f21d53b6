"""Which failures of a write mean the target may have stored it (errors.MaybeStored), and
what the journal makes of one: a put's row is marked landed (ops.landed), so on a target
without directories a mkdir over its name waits for the keys below (key_overlaps). The
real transports against SeaweedFS: tests/integration/test_s3_answer_lost.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from botocore.hooks import HierarchicalEmitter
from botocore.exceptions import (ClientError, ConnectionClosedError, ConnectTimeoutError,
                                 EndpointConnectionError, ReadTimeoutError)

from mirrord.errors import MaybeStored, PermanentError, RetryableError
from mirrord.journal import Change, Journal
from mirrord.ship_rules import error_outcome
from mirrord.targets.s3.errors import classify, classify_write, follow_writes
from tests.fakes import Clock

URL = "http://127.0.0.1:9"


def _client() -> SimpleNamespace:
    """What follow_writes needs of a botocore client: its event system."""
    client = SimpleNamespace(meta=SimpleNamespace(events=HierarchicalEmitter()))
    follow_writes(client)
    return client


def _call(client, op: str, attempts: list) -> BaseException:
    """The events botocore (client.py, endpoint.py) emits for one call of `op` whose
    attempts ended in `attempts` in turn, an exception raised or an error answer
    (`_answer`): needs-retry after each (the call's request_dict carries its context);
    then after-call-error with a last exception raised, or after-call with a last answer,
    whose parsed dict becomes the ClientError's response. Returns what the call raises."""
    context: dict = {}
    for n, attempt in enumerate(attempts, 1):
        client.meta.events.emit(f"needs-retry.s3.{op}", response=None, endpoint=None,
                                operation=None, attempts=n,
                                caught_exception=attempt if isinstance(attempt, Exception)
                                else None, request_dict={"context": context})
    last = attempts[-1]
    if isinstance(last, Exception):
        client.meta.events.emit(f"after-call-error.s3.{op}", exception=last, context=context)
        return last
    status, code = last
    parsed = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    client.meta.events.emit(f"after-call.s3.{op}", http_response=SimpleNamespace(
        status_code=status), parsed=parsed, model=None, context=context)
    return ClientError(parsed, op)


def _answer(status: int, code: str) -> tuple[int, str]:
    return (status, code)


TIMEOUT, CLOSED = ReadTimeoutError(endpoint_url=URL), ConnectionClosedError(endpoint_url=URL)


@pytest.mark.parametrize("op", ["PutObject", "CompleteMultipartUpload"])
@pytest.mark.parametrize("attempts", [
    [TIMEOUT], [CLOSED], [TIMEOUT, TIMEOUT],
    [TIMEOUT, EndpointConnectionError(endpoint_url=URL)],   # stored, then the server gone
    [CLOSED, ConnectTimeoutError(endpoint_url=URL)],
    [TIMEOUT, _answer(503, "SlowDown")], [CLOSED, _answer(500, "InternalError")],
], ids=["timeout", "closed", "timeout-twice", "then-refused", "then-connect-timeout",
        "then-503", "then-500"])
def test_a_write_sent_with_no_answer_may_be_stored(op, attempts):
    exc = _call(_client(), op, attempts)
    err = classify_write(exc, "s3: put 'f'")
    assert isinstance(err, MaybeStored) and str(err).startswith("s3: put 'f'")
    assert type(classify(exc, "s3: put 'f'")) is RetryableError   # the plain classification


@pytest.mark.parametrize("op,attempts", [
    ("PutObject", [EndpointConnectionError(endpoint_url=URL)] * 2),
    ("PutObject", [ConnectTimeoutError(endpoint_url=URL)]),
    ("PutObject", [_answer(500, "InternalError")]),
    ("PutObject", [_answer(503, "SlowDown"), _answer(503, "SlowDown")]),
    ("UploadPart", [ReadTimeoutError(endpoint_url=URL)]),   # s3transfer aborts the upload
    ("HeadObject", [ReadTimeoutError(endpoint_url=URL)]),
], ids=["refused", "connect-timeout", "500", "503", "upload-part", "head"])
def test_a_write_refused_or_answered_is_not_maybe_stored(op, attempts):
    exc = _call(_client(), op, attempts)
    err = classify_write(exc, "s3: put 'f'")
    assert isinstance(err, RetryableError) and not isinstance(err, MaybeStored)


def test_no_such_upload_to_a_completion_sent_again_may_be_stored():
    """CompleteMultipartUpload whose first attempt timed out and whose retry is told
    NoSuchUpload: the first completed the upload (S3 forgets the ID). Alone, NoSuchUpload
    is permanent, as before."""
    again = _call(_client(), "CompleteMultipartUpload", [TIMEOUT, _answer(404, "NoSuchUpload")])
    assert isinstance(classify_write(again, "s3: put 'f'"), MaybeStored)
    alone = _call(_client(), "CompleteMultipartUpload", [_answer(404, "NoSuchUpload")])
    assert isinstance(classify_write(alone, "s3: put 'f'"), PermanentError)
    denied = _call(_client(), "PutObject", [TIMEOUT, _answer(403, "AccessDenied")])
    assert isinstance(classify_write(denied, "s3: put 'f'"), PermanentError)


@pytest.fixture
def j(tmp_path):
    journal = Journal(tmp_path / "j.db", {"s": ("t",)}, clock=Clock(1_800_000_000.0))
    yield journal
    journal.close()


def _claim(j: Journal) -> list:
    return j.claim("t", 100, now=2e9, directories=False)


def test_a_put_that_may_be_stored_is_marked_landed_and_kept_apart(j):
    j.enqueue([Change("s", "X", "put")])
    (op,) = _claim(j)
    out = error_outcome(op, MaybeStored("s3: put 'X': timed out"))
    assert out.landed and not out.permanent and not out.busy
    j.ack([out])
    assert j.db.execute("SELECT landed FROM ops").fetchall() == [(1,)]
    # `rm X; mkdir X; echo > X/y`: X's mkdir may delete the X the put stored
    j.enqueue([Change("s", "X", "delete"), Change("s", "X", "mkdir"), Change("s", "X/y", "put")])
    first = _claim(j)   # the failed put's backoff is long past at now=2e9
    assert not {"X", "X/y"} <= {o.path for o in first}, first


@pytest.mark.parametrize("kind", ["put", "delete"])
def test_a_row_whose_worker_sent_a_put_that_may_be_stored_is_landed(j, kind):
    """MaybeStored comes only from a target's put: a delete's worker that finds the file
    sends it too (as a tree row's does)."""
    j.enqueue([Change("s", "X", kind)])
    (op,) = _claim(j)
    assert error_outcome(op, MaybeStored("timed out")).landed
    assert not error_outcome(op, RetryableError("connect failed")).landed


def test_a_plain_retryable_failure_of_a_put_is_not_landed(j):
    j.enqueue([Change("s", "X", "put")])
    (op,) = _claim(j)
    j.ack([error_outcome(op, RetryableError("s3: put 'X': connect failed"))])
    assert j.db.execute("SELECT landed FROM ops").fetchall() == [(0,)]
