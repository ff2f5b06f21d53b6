"""PutObject (small in-memory bodies), DeleteObject and an existence HEAD as single
signed requests on kept-alive connections, sent by libcurl (pycurl).

Why this exists: a burst of small files to S3 is CPU-bound, and the CPU was
botocore's per-call pipeline (parameter handling, dozens of event hooks, endpoint
rule evaluation, urllib3's pool and retry bookkeeping): 2.2 ms of CPU per 4 KiB
PutObject against SeaweedFS on the reference machine, one core's worth at ~450
puts/s. A churn of short-lived files makes as many DeleteObjects, which cost the
same through the SDK. See README "Benchmarks".

Why libcurl: with signing native, the transport was what was left in Python.
`http.client` (header building, its email-based response-header parser) cost
0.34-0.40 ms of client CPU per put, a pycurl handle 0.28 ms (2,000 PUTs of 4 KiB, 8
threads, SeaweedFS). One `pycurl.Curl` per calling thread, reused: libcurl keeps its
connection alive, sends a request again once on a fresh connection when a reused
one the server had closed gave no answer at all, and never retries a fresh one.

What is not reimplemented: signing (AWS's native runtime, awscrt: signing.py; it
was botocore's S3SigV4Auth until a profile put it in 19% of the burst's GIL samples),
credentials (the session's provider, frozen per request so refreshable ones refresh),
endpoint, addressing style and signing region (taken once from a PutObject the
client itself builds and signs, answered before it reaches the network, so they
are exactly what botocore would use), TLS trust (the CA bundle botocore would use).

What is left to the SDK: everything but a plain success, a plain "try again"
or a failed condition. `put()` returns the ETag on 2xx (`delete()` True); raises
botocore's ClientError for the codes that mean "retry later" (5xx, 408, 429,
SlowDown...) so the target's one classifier handles them, and for 412
PreconditionFailed (a conditional put, If-None-Match / If-Match, found the key
otherwise: its own answer, which the SDK would only repeat, sending the body
again); raises RetryableError when the connection fails (refused, reset, timed
out, empty reply, TLS: the kind and host:port, never a header or a credential);
and returns None (False) for any other answer (a redirect to another region,
403, NoSuchBucket...), on which the caller repeats the request through the full
client, which follows redirects and produces the exact error. The caller
switches this path off if the full client then succeeds where it did not.

It is not used (`for_client` returns None) when a proxy applies to the
endpoint, when there are no credentials, or when the URL prefix cannot be
derived (mirrord.targets.s3.endpoint): the full client handles those.
"""

from __future__ import annotations

import math
import ssl
import threading
from typing import Any, Mapping
from urllib.parse import quote

import pycurl

from mirrord import __version__
from mirrord.errors import MaybeStored, RetryableError
from mirrord.targets.s3.endpoint import (  # noqa: F401 - _proxy_applies: tests use it here
    _proxy_applies, ca_bundle_path, endpoint_for)
from mirrord.targets.s3.lean_answers import Answer, Handle, sent_whole, answer_succeeded
from mirrord.targets.s3.signing import Signer

USER_AGENT = f"mirrord/{__version__}"
# libcurl's error codes -> the kind of failure a RetryableError names.
_KINDS = {pycurl.E_COULDNT_RESOLVE_HOST: "name not resolved",
          pycurl.E_COULDNT_CONNECT: "connect failed", pycurl.E_OPERATION_TIMEDOUT: "timed out",
          pycurl.E_GOT_NOTHING: "empty reply", pycurl.E_SEND_ERROR: "send failed (reset)",
          pycurl.E_RECV_ERROR: "receive failed (reset)",
          pycurl.E_SSL_CONNECT_ERROR: "TLS handshake failed",
          pycurl.E_PEER_FAILED_VERIFICATION: "TLS certificate not trusted"}
# Headers libcurl would add on its own: no `Expect: 100-continue` (a round trip per
# small body), no form Content-Type on a PUT sent as POSTFIELDS (S3 would store it).
_NO_EXPECT = "Expect:"
_NO_CONTENT_TYPE = "Content-Type:"


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
    """Signed PutObject/DeleteObject/HEAD requests, one kept-alive curl handle per thread."""

    def __init__(self, *, scheme: str, host: str, port: int | None, base_path: str,
                 credentials: Any, region: str, connect_timeout: float, read_timeout: float,
                 ca_file: str | None = None, ca_dir: str | None = None):
        """`ca_file`: the CA bundle https is verified against (for_client: botocore's
        choice, else the system's file); `ca_dir`: a hashed directory of CA certificates,
        used when there is no such file (the system's, as OpenSSL's default context
        looks there); both None: libcurl's own default."""
        self.scheme, self.host, self.port = scheme, host, port
        self.base_path = base_path          # ends with "/": the key is appended, quoted
        name = f"[{host}]" if ":" in host else host       # an IPv6 literal (RFC 3986 3.2.2)
        self.netloc = name if port is None else f"{name}:{port}"
        self._origin = f"{scheme}://{self.netloc}"
        self.region = region
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.ca_file, self.ca_dir = ca_file, ca_dir
        self._signer = Signer(credentials, region)
        self._local = threading.local()
        self._all: list[Handle] = []
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
        ca_file = ca_dir = None
        if end.scheme == "https":
            # the bundle botocore would use (endpoint.ca_bundle_path), else the system's:
            # named, as the wheel's libcurl may look for it where this system has none
            system = ssl.get_default_verify_paths()   # each None where it does not exist
            ca_file = ca_bundle_path(ca_bundle) or system.cafile
            ca_dir = None if ca_file else system.capath
        return cls(scheme=end.scheme, host=end.host, port=end.port, base_path=end.base_path,
                   credentials=credentials, region=end.region, connect_timeout=connect_timeout,
                   read_timeout=read_timeout, ca_file=ca_file, ca_dir=ca_dir)

    # ------------------------------------------------------------------ requests
    def put(self, key: str, body: bytes, headers: Mapping[str, str], *,
            sha256: str | None = None) -> str | None:
        """PutObject; the ETag, or None when the full client should answer instead.
        `headers` may carry a condition (If-None-Match: *, If-Match: ETag); a 412 raises
        ClientError PreconditionFailed (lean_answers.succeeded).

        `sha256`: the body's hex digest when the caller has it already (saves hashing it twice)."""
        answer = self._request("PUT", key, body, headers, sha256)
        return (answer.etag or "") if answer_succeeded(answer, "PutObject") else None

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
        return True if answer_succeeded(answer, "HeadObject") else None

    def delete(self, key: str) -> bool:
        """DeleteObject (S3 answers 204 whether the key was there or not); False when the
        full client should answer instead."""
        return answer_succeeded(self._request("DELETE", key, None, {}, None), "DeleteObject")

    def _request(self, method: str, key: str, body: bytes | None, headers: Mapping[str, str],
                 sha256: str | None) -> Answer:
        path = self.base_path + quote(key, safe="/~")
        return self._send(method, path, body, self._sign(method, path, body, headers, sha256))

    def _sign(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str],
              sha256: str | None) -> dict[str, str]:
        signed = self._signer.sign(method, path, {**headers, "Host": self.netloc}, sha256, body)
        signed["User-Agent"] = USER_AGENT   # not signed (botocore leaves it out too)
        return signed

    def _send(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> Answer:
        """One request and its whole answer on this thread's handle. Every option a
        request sets is set again by the next, so nothing leaks from one to the next."""
        handle: Handle | None = getattr(self._local, "handle", None)
        if handle is None:
            handle = self._handle()
        curl = handle.curl
        lines = [f"{k}: {v}" if v else f"{k};" for k, v in headers.items()]  # "k;": empty value
        lines.append(_NO_EXPECT)
        curl.setopt(pycurl.HTTPGET, 1)          # a plain GET again: NOBODY, UPLOAD, POST off
        if method == "HEAD":
            curl.setopt(pycurl.NOBODY, 1)
        elif body is not None:
            # In-memory bodies as POSTFIELDS (the method renamed): pycurl hands libcurl the
            # bytes, no read callback runs. UPLOAD with READFUNCTION/SEEKFUNCTION cost more:
            # 0.230 against 0.204 ms of client CPU per 4 KiB put (SeaweedFS, 8 threads).
            curl.setopt(pycurl.POSTFIELDS, body)
            lines.append(_NO_CONTENT_TYPE)      # libcurl still sends a Content-Type given
        curl.setopt(pycurl.CUSTOMREQUEST, method)
        curl.setopt(pycurl.URL, self._origin + path)
        curl.setopt(pycurl.HTTPHEADER, lines)
        handle.start()
        try:
            curl.perform()
        except pycurl.error as exc:
            code, text = exc.args if len(exc.args) == 2 else (0, str(exc))
            kind = _KINDS.get(code, "transfer failed")
            # libcurl's text names at most the host, port and URL (no credential in it)
            error = MaybeStored if body is not None and sent_whole(curl, body) else RetryableError
            raise error(f"{kind} ({method} to {self.netloc}): curl {code}: {text}") from None
        finally:
            if body is not None:
                # pycurl holds the bytes given as POSTFIELDS until they are replaced: each
                # worker's last body (up to 8 MiB) would stay in memory after a burst
                curl.setopt(pycurl.POSTFIELDS, b"")
        return Answer(curl.getinfo(pycurl.RESPONSE_CODE), handle.reason, handle.etag,
                       b"".join(handle.body))

    def _handle(self) -> Handle:
        """This thread's handle, made and configured once."""
        curl = pycurl.Curl()
        handle = Handle(curl)
        curl.setopt(pycurl.NOSIGNAL, 1)         # timeouts without SIGALRM: threads
        curl.setopt(pycurl.TCP_NODELAY, 1)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)   # a redirect is the full client's to follow
        curl.setopt(pycurl.PROXY, "")           # none from the environment: the lean path is
        curl.setopt(pycurl.NOPROXY, "*")        # only made where none applies (_proxy_applies)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self.connect_timeout * 1000)))
        # libcurl has no socket read timeout; its closest analogue: abort when fewer than
        # 1 byte/s moved for read_timeout seconds (whole seconds)
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(self.read_timeout)))
        if self.scheme == "https":
            curl.setopt(pycurl.SSL_VERIFYPEER, 1)
            curl.setopt(pycurl.SSL_VERIFYHOST, 2)
            if self.ca_file:
                curl.setopt(pycurl.CAINFO, self.ca_file)
            elif self.ca_dir:
                curl.setopt(pycurl.CAPATH, self.ca_dir)
        curl.setopt(pycurl.HEADERFUNCTION, handle.header)
        curl.setopt(pycurl.WRITEFUNCTION, handle.body_part)
        self._local.handle = handle
        with self._lock:
            self._all.append(handle)
        return handle

    def close(self) -> None:
        """Close every thread's handle and its connection (the threads may be gone
        already); a thread that sends again afterwards makes a new one."""
        with self._lock:
            handles, self._all = self._all, []
            self._local = threading.local()
        for handle in handles:
            handle.curl.close()
