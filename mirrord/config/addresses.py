"""Address forms a key accepts, checked as strictly as their use will take them.

Every form check-config passes must work at use: a listen address must be one
bind(2) takes, a check_url one urllib can fetch, a conninfo one libpq can
parse. A form that passed and then failed at use once reached the flush of a
failover (`memcached = /run/memcached/memcached.sock` taken as a host name);
these parsers refuse such forms at load time instead, with a message that
never repeats a credential.
"""

from __future__ import annotations

import re
import socket
import urllib.parse

from mirrord.config.values import parse_hostport

# RFC 1123 host names (labels of letters, digits and inner hyphens; a trailing dot allowed)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")     # what http.client refuses in a URL (InvalidURL)


def is_host(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (without brackets) or an RFC 1123 host name."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.inet_pton(family, host)
        return True
    except OSError:
        return family == socket.AF_INET and bool(_HOSTNAME.match(host))


def parse_listen(text: str) -> tuple[str, int]:
    """A listen address: 'host:port' or '[v6addr]:port' -> (host, port).

    ValueError for a host bind(2) cannot take (`*`, an empty host, a scoped or otherwise
    malformed IPv6 address, a name with spaces): such a value once passed check-config
    and then stopped `mirrord health` (or the daemon's metrics) at start."""
    host, port = parse_hostport(text)
    if not is_host(host):
        raise ValueError(f"not host:port: {text.strip()!r} (the host must be an IPv4 "
                         "address, [IPv6 address] or a host name; all IPv4 interfaces: "
                         "0.0.0.0, all interfaces: [::])")
    return host, port


def shown_url(url: str) -> str:
    """`url` with any user:password@ masked, for messages."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@", r"\1***@", url)


def check_url_problem(url: str) -> str:
    """Why urllib could not fetch `url` as [failover] check_url; "" when it can.

    Refused: a scheme other than http/https, no host, a port that is not a number in
    1-65535, whitespace or control characters (http.client raises InvalidURL for them,
    RFC 3986 wants them percent-encoded) and user:password@ (urllib sends no credentials
    from the URL: http.client takes `user:password@host` as the host, and the password
    would be printed in every plan, log line and failover.log)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a URL ({exc}): {shown_url(url)!r}"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got {shown_url(url)!r}"
    if "@" in parts.netloc:
        return ("must not hold user:password@ (urllib does not send it, and it would be "
                "printed): give the check page its own unauthenticated URL")
    if _CONTROL.search(url):
        return f"contains a space or control character (percent-encode it, e.g. %20): {url!r}"
    if not parts.hostname:
        return f"has no host: {url!r}"
    if port == 0:
        return f"port 0 is not a port: {url!r}"
    return ""


def conninfo_problem(conninfo: str) -> str:
    """Why libpq cannot parse `conninfo` (key=value pairs or a postgresql:// URI); ""
    when it can. The message names the problem, never a value (a quoted fragment of
    libpq's message may be part of a password, as in `password=se cret`)."""
    # psycopg only with a [failover] section: the primary's daemon never loads it
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        text = " ".join(str(exc).split())
        if not text.startswith("invalid connection option"):   # that one quotes a key
            text = re.sub(r'"[^"]*"', '"..."', text)
        return f"not a libpq conninfo (key=value pairs or a postgresql:// URI): {text}"
    ports = str(params.get("port") or "")
    if ports and not all(p == "" or (p.isdigit() and 0 < int(p) < 65536)
                         for p in ports.split(",")):
        return f"port {ports!r} is not a port number (1-65535, or a comma list of them)"
    return ""
