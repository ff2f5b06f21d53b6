"""PutObject (small in-memory bodies) and DeleteObject as single signed requests on
kept-alive connections.

Why this exists: a burst of small files to S3 is CPU-bound, and the CPU was
botocore's per-call pipeline (parameter handling, dozens of event hooks, endpoint
rule evaluation, urllib3's pool and retry bookkeeping): 2.2 ms of CPU per 4 KiB
PutObject against SeaweedFS on the reference machine, one core's worth at ~450
puts/s. The same request signed by botocore's own SigV4 signer and sent on a
per-thread `http.client` connection costs 0.5 ms. A churn of short-lived files
makes as many DeleteObjects, which cost the same through the SDK. See README
"Benchmarks".

What is not reimplemented: signing (botocore.auth.S3SigV4Auth), credentials
(the session's provider, frozen per request so refreshable ones refresh),
endpoint, addressing style and signing region (taken once from a PutObject the
client itself builds and signs, answered before it reaches the network, so they
are exactly what botocore would use).

What is left to the SDK: everything but a plain success or a plain
"try again". `put()` returns the ETag on 2xx (`delete()` True); raises botocore's
ClientError for
the codes that mean "retry later" (5xx, 408, 429, SlowDown...) so the target's
one classifier handles them; raises RetryableError when the connection fails
(after one retry on a fresh connection if a kept-alive one had gone stale);
and returns None (False) for any other answer (a redirect to another region, 403,
NoSuchBucket...), on which the caller repeats the request through the full
client, which follows redirects and produces the exact error. The caller
switches this path off if the full client then succeeds where it did not.

It is not used (`for_client` returns None) when a proxy applies to the
endpoint, when there are no credentials, or when the URL prefix cannot be
derived: the full client handles those.
"""

from __future__ import annotations

import http.client
import os
import re
import ssl
import threading
import urllib.request
from typing import Any, Mapping, NamedTuple
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.exceptions import ClientError

from mirrord import __version__
from mirrord.errors import RetryableError

PROBE_KEY = "mirrord-probe-key"
USER_AGENT = f"mirrord/{__version__}"
# Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/REGION/s3/aws4_request, ...
_SCOPE = re.compile(r"AWS4-HMAC-SHA256 Credential=[^/,]+/\d{8}/([^/,]+)/s3/aws4_request")
_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]{0,500})</Message>")
# Answers the full client would also only retry: surfaced as ClientError for classify().
_RETRY_STATUS = frozenset({408, 429})
# A kept-alive connection the server has closed fails like this before any answer.
_STALE = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected,
          http.client.BadStatusLine, http.client.CannotSendRequest)


# PutObject parameters as boto3 takes them -> the headers they become on the wire.
_ARG_HEADERS = {"ContentType": "Content-Type", "ACL": "x-amz-acl",
                "StorageClass": "x-amz-storage-class"}


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
        self.credentials = credentials
        self.region = region
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ssl_context = ssl_context
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    @classmethod
    def for_client(cls, client: Any, credentials: Any, bucket: str, *,
                   connect_timeout: float, read_timeout: float,
                   ca_bundle: str = "") -> "LeanRequests | None":
        """The lean path for this client and bucket, or None where only the SDK will do.

        Call before the client is shared: it probes with the client's own event hooks."""
        if credentials is None:
            return None
        probe = probe_put_request(client, bucket)
        if probe is None:
            return None
        url, region = probe
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.path.endswith("/" + PROBE_KEY):
            return None
        if parts.query or _proxy_applies(parts.scheme, parts.hostname or ""):
            return None
        context = None
        if parts.scheme == "https":
            # the bundle botocore would use: the configured one, else $AWS_CA_BUNDLE, else the system's
            context = ssl.create_default_context(
                cafile=ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None)
        default_port = 443 if parts.scheme == "https" else 80
        port = parts.port if parts.port not in (None, default_port) else None
        return cls(scheme=parts.scheme, host=parts.hostname or "", port=port,
                   base_path=parts.path[: -len(PROBE_KEY)], credentials=credentials,
                   region=region, connect_timeout=connect_timeout, read_timeout=read_timeout,
                   ssl_context=context)

    # ------------------------------------------------------------------ requests
    def put(self, key: str, body: bytes, headers: Mapping[str, str], *,
            sha256: str | None = None) -> str | None:
        """PutObject; the ETag, or None when the full client should answer instead.

        `sha256`: the body's hex digest when the caller has it already (saves hashing it twice)."""
        answer = self._request("PUT", key, body, headers, sha256)
        return (answer.etag or "") if _succeeded(answer, "PutObject") else None

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
        request = AWSRequest(method=method, url=f"{self.scheme}://{self.netloc}{path}",
                             data=body or b"", headers={**headers, "Host": self.netloc})
        signer = _KnownPayloadAuth if sha256 else S3SigV4Auth
        request.context["payload_sha256"] = sha256
        signer(self.credentials.get_frozen_credentials(), "s3", self.region).add_auth(request)
        signed = dict(request.headers.items())
        signed["User-Agent"] = USER_AGENT
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


class _KnownPayloadAuth(S3SigV4Auth):
    """S3SigV4Auth that signs a payload digest computed beforehand instead of hashing again."""

    def payload(self, request: Any) -> str:
        return request.context["payload_sha256"]


class _NoBody:
    def stream(self, **_: Any) -> Any:
        return iter([b""])


def probe_put_request(client: Any, bucket: str) -> tuple[str, str] | None:
    """(URL, signing region) of the PutObject request this client would send, sent nowhere.

    The request goes through every hook of the client (endpoint rules, addressing
    style, signing) and is answered by a `before-send` handler, the hook botocore
    provides for answering a request without the network. None when it is not
    plainly SigV4-signed (S3 Express, SigV4a...), which only the SDK can do."""
    seen: dict[str, Any] = {}

    def answer(request: Any, **_: Any) -> AWSResponse:
        seen["url"] = request.url
        seen["auth"] = request.headers.get("Authorization") or b""
        return AWSResponse(request.url, 200, {}, _NoBody())

    event = "before-send.s3.PutObject"
    client.meta.events.register_first(event, answer)
    try:
        client.put_object(Bucket=bucket, Key=PROBE_KEY, Body=b"")
    finally:
        client.meta.events.unregister(event, answer)
    auth = seen.get("auth", b"")
    auth = auth.decode("ascii", "replace") if isinstance(auth, bytes) else str(auth)
    scope = _SCOPE.match(auth)
    if "url" not in seen or scope is None:
        return None
    return seen["url"], scope.group(1)


def _succeeded(answer: _Answer, operation: str) -> bool:
    """True on 2xx; botocore's ClientError for "retry later" answers; False for the rest."""
    if 200 <= answer.status < 300:
        return True
    if answer.status >= 500 or answer.status in _RETRY_STATUS:
        code, message = _error_fields(answer.body)
        raise ClientError({"Error": {"Code": code or str(answer.status),
                                     "Message": message or answer.reason},
                           "ResponseMetadata": {"HTTPStatusCode": answer.status}}, operation)
    return False


def _error_fields(answer: bytes) -> tuple[str, str]:
    """S3's error Code and Message from an XML error body (empty when there is none)."""
    code = _CODE.search(answer)
    message = _MESSAGE.search(answer)
    return (code.group(1).decode("utf-8", "replace") if code else "",
            message.group(1).decode("utf-8", "replace") if message else "")


def _proxy_applies(scheme: str, host: str) -> bool:
    """Whether the environment routes requests to host through a proxy (botocore honours it)."""
    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme)) and not urllib.request.proxy_bypass(host)
