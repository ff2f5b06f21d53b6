"""The candidate measured against mirrord's lean transport: PutObject and DeleteObject
through the AWS Common Runtime (awscrt.s3.S3Client), with the contract of
mirrord.targets.s3.lean.LeanRequests, so it could replace it in the target unchanged.

Why it is here and not in mirrord/: issue 15 asked to measure the field's native
client against the hand-written lean path before keeping the latter. awscrt signs
(SigV4), pools connections and does the I/O in native event-loop threads; a
worker thread only builds the request and waits for it. bench/s3_clients.py
measured both against SeaweedFS (4 KiB puts, 16 threads): CPU per put within a
few percent of lean's (higher, with one event-loop thread; +35% with two) and the
same wall time, so the target keeps the lean path and mirrord does not depend on
awscrt. This module stays so the comparison can be run again (needs boto3[crt]).

Contract (as lean.LeanRequests): `put()` returns the ETag on 2xx (`delete()`
True); raises botocore's ClientError built from S3's Code and Message only for
"retry later" answers (5xx, 408, 429); raises RetryableError when the connection
fails or no answer comes within connect + read timeout (the request is then
cancelled); returns None (False) for any other answer or a CRT error that is not
about the network, on which a caller would ask the full botocore client. Messages
carry the CRT error's name and text only, never a header or a credential.
"""

from __future__ import annotations

import io
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Mapping
from urllib.parse import quote

from mirrord.errors import RetryableError
from mirrord.targets.s3.endpoint import Endpoint, ca_bundle_path, endpoint_for
from mirrord.targets.s3.lean import USER_AGENT
from mirrord.targets.s3.lean_answers import succeeded

try:
    from awscrt.auth import AwsCredentials, AwsCredentialsProvider
    from awscrt.exceptions import AwsCrtError
    from awscrt.http import HttpHeaders, HttpRequest
    from awscrt.io import (ClientBootstrap, ClientTlsContext, DefaultHostResolver,
                           EventLoopGroup, TlsContextOptions)
    from awscrt.s3 import (S3Client, S3RequestTlsMode, S3RequestType, S3ResponseError,
                           S3RetryConfig, create_default_s3_signing_config)
except ImportError:          # boto3 without [crt]: the lean path serves
    S3Client = None

EVENT_LOOP_THREADS = 1       # native I/O threads: one costs less CPU a put than two
SINGLE_PUT_LIMIT = 16 << 20  # CRT splits bodies above its threshold; ours stay below 8 MiB
# CRT error names that mean the network or the server went away: worth a retry later.
_NETWORK = ("SOCKET", "IO_", "DNS", "TIMEOUT", "CONNECTION", "HTTP_", "TLS", "SHUTDOWN",
            "S3_REQUEST_TIMEOUT", "S3_INTERNAL_ERROR", "S3_SLOW_DOWN")


def available() -> bool:
    """Whether awscrt is installed (boto3[crt])."""
    return S3Client is not None


class CrtRequests:
    """Signed PutObject/DeleteObject requests through one shared awscrt S3Client."""

    def __init__(self, end: Endpoint, credentials: Any, *, workers: int,
                 connect_timeout: float, read_timeout: float, ca_bundle: str = ""):
        self.end = end
        self.timeout = connect_timeout + read_timeout
        loops = EventLoopGroup(EVENT_LOOP_THREADS)
        tls = None
        if end.scheme == "https" and ca_bundle_path(ca_bundle):
            opts = TlsContextOptions()
            opts.override_default_trust_store_from_path(ca_filepath=ca_bundle_path(ca_bundle))
            tls = ClientTlsContext(opts).new_connection_options()
        # The provider asks botocore's credentials at each signing: refreshable ones refresh.
        provider = AwsCredentialsProvider.new_delegate(lambda: _frozen(credentials))
        self._client = S3Client(
            bootstrap=ClientBootstrap(loops, DefaultHostResolver(loops)), region=end.region,
            tls_mode=S3RequestTlsMode.ENABLED if end.scheme == "https"
            else S3RequestTlsMode.DISABLED,
            tls_connection_options=tls,
            signing_config=create_default_s3_signing_config(region=end.region,
                                                            credential_provider=provider),
            part_size=8 << 20, multipart_upload_threshold=SINGLE_PUT_LIMIT,
            max_active_connections_override=max(1, workers),
            connect_timeout_ms=int(connect_timeout * 1000),
            # one retry at most, soon: the shipper does its own backoff
            retry_config=S3RetryConfig(max_retries=1, backoff_scale_factor_ms=50,
                                       max_backoff_secs=1))

    @classmethod
    def for_client(cls, client: Any, credentials: Any, bucket: str, *, workers: int,
                   connect_timeout: float, read_timeout: float,
                   ca_bundle: str = "") -> "CrtRequests | None":
        """The CRT path for this botocore client and bucket, or None (no awscrt, or only the
        SDK will do). Call before the client is shared: it probes with its event hooks."""
        if S3Client is None:
            return None
        end = endpoint_for(client, credentials, bucket)
        if end is None:
            return None
        return cls(end, credentials, workers=workers, connect_timeout=connect_timeout,
                   read_timeout=read_timeout, ca_bundle=ca_bundle)

    def put(self, key: str, body: bytes, headers: Mapping[str, str], *,
            sha256: str | None = None) -> str | None:
        """PutObject; the ETag, or None when the full client should answer instead.
        `sha256` is accepted for lean's signature; CRT hashes the payload itself."""
        fields = [("Content-Length", str(len(body))), *headers.items()]
        status, answer = self._request("PUT", key, fields, body, S3RequestType.PUT_OBJECT,
                                       "PutObject")
        return (answer.get("etag") or "") if status else None

    def delete(self, key: str) -> bool:
        """DeleteObject (S3 answers 204 whether the key was there or not); False when the
        full client should answer instead."""
        status, _ = self._request("DELETE", key, [], None, S3RequestType.DEFAULT, "DeleteObject")
        return status

    def _request(self, method: str, key: str, fields: list[tuple[str, str]],
                 body: bytes | None, kind: Any, operation: str) -> tuple[bool, dict[str, str]]:
        headers = HttpHeaders([("Host", self.end.netloc), ("User-Agent", USER_AGENT), *fields])
        request = HttpRequest(method, self.end.base_path + quote(key, safe="/~"), headers,
                              io.BytesIO(body) if body is not None else None)
        seen: dict[str, str] = {}

        def on_headers(status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
            for name, value in headers:
                if name.lower() == "etag":
                    seen["etag"] = value

        pending = self._client.make_request(type=kind, request=request,
                                            operation_name=operation, on_headers=on_headers)
        try:
            pending.finished_future.result(timeout=self.timeout)
        except FutureTimeout:
            pending.cancel()
            raise RetryableError(f"no answer within {self.timeout:g} s") from None
        except S3ResponseError as exc:
            return succeeded(int(exc.status_code or 0), exc.name, exc.body or b"",
                             operation), seen
        except AwsCrtError as exc:
            if any(part in exc.name for part in _NETWORK):
                raise RetryableError(f"{exc.name}: {exc.message}") from None
            return False, seen
        return True, seen

    def close(self) -> None:
        """Drop the client; its native threads end when the last request has finished."""
        self._client = None


def _frozen(credentials: Any) -> "AwsCredentials":
    frozen = credentials.get_frozen_credentials()
    return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)
