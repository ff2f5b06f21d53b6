"""What comes back on the lean path's kept-alive curl handle (mirrord.targets.s3.lean),
and what it means: a plain success, a "retry later" or a failed condition, or an answer
left for the full client (boto3) to ask again and classify.

Split from lean.py, which sends the requests; the rules are S3's (its error XML body,
https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html) and HTTP's (RFC 9110).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pycurl
from botocore.exceptions import ClientError

_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]{0,500})</Message>")
# Answers the full client would also only retry: surfaced as ClientError for classify().
_RETRY_STATUS = frozenset({408, 429})
PRECONDITION_FAILED = 412   # a condition the request carried failed (RFC 9110 15.5.13)


class Handle:
    """One thread's curl handle and the answer being received on it."""

    def __init__(self, curl: Any):
        self.curl = curl
        self.start()

    def start(self) -> None:
        """Forget the last answer: called before each request is performed."""
        self.etag: str | None = None
        self.reason, self.body = "", []

    def header(self, line: bytes) -> None:
        """One header line of the answer (libcurl also passes the status line)."""
        if line[:5] == b"HTTP/":                # a new answer (after a retry too)
            self.etag, self.body = None, []
            parts = line.split(None, 2)
            self.reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
        elif line[:5].lower() == b"etag:":      # names are case-insensitive (RFC 9110 5.1)
            self.etag = line[5:].strip().decode("latin-1")

    def body_part(self, data: bytes) -> None:
        """One piece of the answer's body (libcurl's WRITEFUNCTION)."""
        self.body.append(data)


class Answer(NamedTuple):
    """One whole answer: HTTP status, reason phrase, ETag header (None: none), body."""

    status: int
    reason: str
    etag: str | None
    body: bytes


def answer_succeeded(answer: Answer, operation: str) -> bool:
    """succeeded() of one Answer to `operation` (a name as boto3 has it: "PutObject")."""
    return succeeded(answer.status, answer.reason, answer.body, operation)


def succeeded(status: int, reason: str, body: bytes, operation: str) -> bool:
    """True on 2xx; botocore's ClientError (S3's Code and Message only, never the request)
    for "retry later" answers (5xx, 408, 429) and for 412 (a conditional request's
    condition failed: the caller decides, no second request); False for the rest, which
    the full client asks again and answers for good."""
    if 200 <= status < 300:
        return True
    if status >= 500 or status in _RETRY_STATUS or status == PRECONDITION_FAILED:
        code, message = _error_fields(body)
        raise ClientError({"Error": {"Code": code or str(status),
                                     "Message": message or reason},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, operation)
    return False


def _error_fields(answer: bytes) -> tuple[str, str]:
    """S3's error Code and Message from an XML error body (empty when there is none)."""
    code = _CODE.search(answer)
    message = _MESSAGE.search(answer)
    return (code.group(1).decode("utf-8", "replace") if code else "",
            message.group(1).decode("utf-8", "replace") if message else "")


def sent_whole(curl: pycurl.Curl, body: bytes) -> bool:
    """Whether the failed transfer on `curl` had sent its request whole, on its last
    attempt or on an earlier one: then the server may have stored it though no answer
    came (errors.MaybeStored). libcurl sends a request again on a fresh connection when a
    kept-alive one gave no answer at all (a server that stored the put and restarted), and
    then CURLINFO_SIZE_UPLOAD_T counts the last attempt's body only, while
    CURLINFO_REQUEST_SIZE adds up every attempt's bytes, headers and body: so sent whole
    when this attempt's upload covers `body`, or the bytes before it do. A connect that
    failed (nothing sent), or one body cut short, stored nothing (S3 refuses a body shorter
    than its Content-Length). Never raises: a handle that cannot tell counts as sent."""
    try:
        sent = curl.getinfo(pycurl.REQUEST_SIZE)
        up = curl.getinfo(pycurl.SIZE_UPLOAD_T)
    except pycurl.error:
        return True
    return sent > 0 and (up >= len(body) or sent >= len(body) + up)
