"""Where the S3 target's plain signed requests go: the endpoint botocore itself would use.

The URL, addressing style and signing region come from a PutObject the botocore
client builds and signs, answered by a `before-send` hook before it reaches the
network (probe_put_request), so the lean and CRT transports send exactly where
the SDK would. None where only the SDK will do: no credentials, a signature other
than plain SigV4 (S3 Express, SigV4a), a query in the URL, a proxy that applies.
"""

from __future__ import annotations

import os
import re
import urllib.request
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse

PROBE_KEY = "mirrord-probe-key"
# Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/REGION/s3/aws4_request, ...
_SCOPE = re.compile(r"AWS4-HMAC-SHA256 Credential=[^/,]+/\d{8}/([^/,]+)/s3/aws4_request")


class Endpoint(NamedTuple):
    """Where plain signed requests for one bucket go, as botocore itself would send them."""

    scheme: str        # "http" or "https"
    host: str
    port: int | None   # None: the scheme's default
    base_path: str     # ends with "/": a key is appended, quoted
    region: str        # the SigV4 signing region

    @property
    def netloc(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def endpoint_for(client: Any, credentials: Any, bucket: str) -> Endpoint | None:
    """The endpoint of `client`'s PutObject for `bucket` (probe_put_request), or None where
    only the SDK will do: no credentials, no plain SigV4, a query in the URL, a proxy."""
    if credentials is None:
        return None
    probe = probe_put_request(client, bucket)
    if probe is None:
        return None
    url, region = probe
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.path.endswith("/" + PROBE_KEY):
        return None
    if parts.query or _proxy_applies(parts.scheme, parts.netloc):
        return None
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port if parts.port not in (None, default_port) else None
    return Endpoint(parts.scheme, parts.hostname or "", port, parts.path[: -len(PROBE_KEY)],
                    region)


def ca_bundle_path(configured: str) -> str:
    """The CA bundle botocore would use: the configured one, else $AWS_CA_BUNDLE; "" for
    the system's."""
    return configured or os.environ.get("AWS_CA_BUNDLE") or ""


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


def _proxy_applies(scheme: str, netloc: str) -> bool:
    """Whether the environment routes requests to `netloc` (host[:port], as in the URL)
    through a proxy: botocore's rule (utils.should_bypass_proxies), which asks
    proxy_bypass about the whole netloc, so a NO_PROXY entry naming host:port counts (given
    the host alone, such an entry sent every put through the SDK: a breaker)."""
    proxies = urllib.request.getproxies()
    return bool(proxies.get(scheme)) and not urllib.request.proxy_bypass(netloc)
