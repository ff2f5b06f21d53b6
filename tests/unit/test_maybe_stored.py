"""Which failures of a write mean the target may have stored it (errors.MaybeStored), and
what the journal makes of one: a put's row is marked landed (ops.landed), so on a target
without directories a mkdir over its name waits for the keys below (key_overlaps). The
real transports against SeaweedFS: tests/integration/test_s3_answer_lost.py."""

from __future__ import annotations

import pytest
from botocore.exceptions import (ClientError, ConnectionClosedError, ConnectTimeoutError,
                                 EndpointConnectionError, ReadTimeoutError)

from mirrord.errors import MaybeStored, RetryableError
from mirrord.journal import Change, Journal
from mirrord.ship_rules import error_outcome
from mirrord.targets.s3.errors import classify, classify_write
from tests.fakes import Clock

URL = "http://127.0.0.1:9"


@pytest.mark.parametrize("exc", [ReadTimeoutError(endpoint_url=URL),
                                 ConnectionClosedError(endpoint_url=URL)],
                         ids=["read-timeout", "closed"])
def test_a_write_sent_with_no_answer_may_be_stored(exc):
    err = classify_write(exc, "s3: put 'f'")
    assert isinstance(err, MaybeStored) and str(err).startswith("s3: put 'f'")
    assert type(classify(exc, "s3: stat 'f'")) is RetryableError   # a read: nothing stored


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url=URL),
    ConnectTimeoutError(endpoint_url=URL),
    ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                "PutObject"),
    ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                "PutObject"),
], ids=["refused", "connect-timeout", "500", "503"])
def test_a_write_refused_or_answered_is_not_maybe_stored(exc):
    err = classify_write(exc, "s3: put 'f'")
    assert isinstance(err, RetryableError) and not isinstance(err, MaybeStored)


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


@pytest.mark.parametrize("kind", ["delete", "mkdir"])
def test_only_a_put_is_marked_landed(j, kind):
    j.enqueue([Change("s", "X", kind)])
    (op,) = _claim(j)
    assert not error_outcome(op, MaybeStored("timed out")).landed
    assert not error_outcome(op, RetryableError("connect failed")).landed


def test_a_plain_retryable_failure_of_a_put_is_not_landed(j):
    j.enqueue([Change("s", "X", "put")])
    (op,) = _claim(j)
    j.ack([error_outcome(op, RetryableError("s3: put 'X': connect failed"))])
    assert j.db.execute("SELECT landed FROM ops").fetchall() == [(0,)]
