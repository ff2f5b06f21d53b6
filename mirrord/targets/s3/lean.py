"""PutObject (small in-memory bodies), DeleteObject and an existence HEAD as single
signed requests on kept-alive connections.

Why this exists: a burst of small files to S3 is CPU-bound, and the CPU was
botocore's per-call pipeline (parameter handling, dozens of event hooks, endpoint
rule evaluation, urllib3's pool and retry bookkeeping): 2.2 ms of CPU per 4 KiB
PutObject against SeaweedFS on the reference machine, one core's worth at ~450
puts/s. The same request signed by botocore's own SigV4 signer and sent on a
per-thread `http.client` connection costs 0.5 ms. A churn of short-lived files
makes as many DeleteObjects, which cost the same through the SDK. See README
"Benchmarks".

What is not reimplemented: signing (AWS's native runtime, awscrt: signing.py; it
was botocore's S3SigV4Auth until a profile put it in 19% of the burst's GIL samples), credentials
(the session's provider, frozen per request so refreshable ones refresh),
endpoint, addressing style and signing region (taken once from a PutObject the
client itself builds and signs, answered before it reaches the network, so they
are exactly what botocore would use).

What is left to the SDK: everything but a plain success, a plain "try again"
or a failed condition. `put()` returns the ETag on 2xx (`delete()` True); raises
botocore's ClientError for the codes that mean "retry later" (5xx, 408, 429,
SlowDown...) so the target's one classifier handles them, and for 412
PreconditionFailed (a conditional put, If-None-Match / If-Match, found the key
otherwise: its own answer, which the SDK would only repeat, sending the body
again); raises RetryableError when the connection fails (after one retry on a
fresh connection if a kept-alive one had gone stale); and returns None (False)
for any other answer (a redirect to another region, 403, NoSuchBucket...), on
which the caller repeats the request through the full client, which follows
redirects and produces the exact error. The caller
switches this path off if the full client then succeeds where it did not.

It is not used (`for_client` returns None) when a proxy applies to the
endpoint, when there are no credentials, or when the URL prefix cannot be
derived (mirrord.targets.s3.endpoint): the full client handles those.
"""

from __future__ import annotations

import http.client
import re
import ssl
import threading
from typing import Any, Mapping, NamedTuple
from urllib.parse import quote

from botocore.exceptions import ClientError

from mirrord import __version__
from mirrord.errors import RetryableError
from mirrord.targets.s3.endpoint import (  # noqa: F401 - _proxy_applies: tests use it here
    _proxy_applies, ca_bundle_path, endpoint_for)
from mirrord.targets.s3.signing import Signer

USER_AGENT = f"mirrord/{__version__}"
_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]{0,500})</Message>")
# Answers the full client would also only retry: surfaced as ClientError for classify().
_RETRY_STATUS = frozenset({408, 429})
PRECONDITION_FAILED = 412   # a condition the request carried failed (RFC 9110 15.5.13)
# A kept-alive connection the server has closed fails like this before any answer.
_STALE = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected,
          http.client.BadStatusLine, http.client.CannotSendRequest)


# PutObject parameters as boto3 takes them -> the headers they become on the wire.
_ARG_HEADERS = {"ContentType": "Content-Type", "ACL": "x-amz-acl",
                "StorageClass": "x-amz-storage-class",
                "IfNoneMatch": "If-None-Match", "IfMatch": "If-Match"}   # conditional writes


def headers_from_args(args: Mapping[str, Any]) -> dict[str, str]:
    """Request headers for put_object keyword arguments (Metadata -> x-amz-meta-*)."""
    headers = {_ARG_HEADERS[name]: str(value) for name, value in args.items() if name != "Metadata"}
    headers.update({f"x-amz-meta-{k}": str(v) for k, v in args.get("Metadata", {}).items()})
    return headers


class LeanRequests:
    """Signed PutObject/DeleteObject requests, one kept-alive connection per calling thread."""

    def __init__(self, *, scheme: str, host: str, port: int | None, base_path: str,
                 credentials: Any, region: str, connect_timeout: float, read_timeout: float,
                 ssl_context: ssl.SSLContext | None):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.base_path = base_path          # ends with "/": the key is appended, quoted
        self.netloc = host if port is None else f"{host}:{port}"
        self.region = region
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ssl_context = ssl_context
        self._signer = Signer(credentials, region)
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    @property
    def credentials(self) -> Any:
        """The botocore credentials requests are signed with (frozen per request)."""
        return self._signer.credentials

    @credentials.setter
    def credentials(self, value: Any) -> None:
        self._signer.credentials = value

    @classmethod
    def for_client(cls, client: Any, credentials: Any, bucket: str, *,
                   connect_timeout: float, read_timeout: float,
                   ca_bundle: str = "") -> "LeanRequests | None":
        """The lean path for this client and bucket, or None where only the SDK will do.

        Call before the client is shared: it probes with the client's own event hooks."""
        end = endpoint_for(client, credentials, bucket)
        if end is None:
            return None
        context = None
        if end.scheme == "https":
            # the bundle botocore would use (endpoint.ca_bundle_path), else the system's
            context = ssl.create_default_context(cafile=ca_bundle_path(ca_bundle) or None)
        return cls(scheme=end.scheme, host=end.host, port=end.port, base_path=end.base_path,
                   credentials=credentials, region=end.region, connect_timeout=connect_timeout,
                   read_timeout=read_timeout, ssl_context=context)

    # ------------------------------------------------------------------ requests
    def put(self, key: str, body: bytes, headers: Mapping[str, str], *,
            sha256: str | None = None) -> str | None:
        """PutObject; the ETag, or None when the full client should answer instead.
        `headers` may carry a condition (If-None-Match: *, If-Match: ETag); a 412 raises
        ClientError PreconditionFailed (see succeeded()).

        `sha256`: the body's hex digest when the caller has it already (saves hashing it twice)."""
        answer = self._request("PUT", key, body, headers, sha256)
        return (answer.etag or "") if _succeeded(answer, "PutObject") else None

    def exists(self, key: str) -> bool | None:
        """HeadObject reduced to its answer: True when an object stands at `key` (2xx),
        False when none does (404), None when the full client should ask instead (403,
        which S3 answers for a missing key without s3:ListBucket, a redirect...). Raises
        as put() does for "retry later" answers and connection failures. Why: a new
        directory on a target without directories is one HEAD (S3Target.remove_file_at),
        2 ms of CPU through botocore against 0.3 ms here."""
        answer = self._request("HEAD", key, None, {}, None)
        if answer.status == 404:
            return False
        return True if _succeeded(answer, "HeadObject") else None

    def delete(self, key: str) -> bool:
        """DeleteObject (S3 answers 204 whether the key was there or not); False when the
        full client should answer instead."""
        return _succeeded(self._request("DELETE", key, None, {}, None), "DeleteObject")

    def _request(self, method: str, key: str, body: bytes | None, headers: Mapping[str, str],
                 sha256: str | None) -> "_Answer":
        path = self.base_path + quote(key, safe="/~")
        return self._send(method, path, body, self._sign(method, path, body, headers, sha256))

    def _sign(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str],
              sha256: str | None) -> dict[str, str]:
        signed = self._signer.sign(method, path, {**headers, "Host": self.netloc}, sha256, body)
        signed["User-Agent"] = USER_AGENT   # not signed (botocore leaves it out too)
        return signed

    def _send(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> "_Answer":
        """One request and its whole answer; a stale kept-alive connection is replaced once."""
        conn = getattr(self._local, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = self._connect()
        try:
            try:
                answer = _exchange(conn, method, path, body, headers)
            except _STALE:
                if not reused:
                    raise
                self._drop(conn)
                conn = self._connect()
                answer = _exchange(conn, method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._drop(conn)
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        if answer.will_close:
            self._drop(conn)
        return answer

    def _connect(self) -> http.client.HTTPConnection:
        if self.ssl_context is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout, context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise RetryableError(f"connect to {self.netloc}: {type(exc).__name__}: {exc}") from None
        if conn.sock is not None:
            conn.sock.settimeout(self.read_timeout)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)

    def close(self) -> None:
        """Close every thread's connection (the threads may be gone already)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class _Answer(NamedTuple):
    status: int
    reason: str
    etag: str | None
    body: bytes
    will_close: bool


def _exchange(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> _Answer:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return _Answer(response.status, response.reason, response.getheader("ETag"), data,
                   response.will_close)


def _succeeded(answer: _Answer, operation: str) -> bool:
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


