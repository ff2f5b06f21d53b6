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

from mirrord.config.hostport import parse_hostport
from mirrord.logsetup import mask_userinfo

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


# a listen address's host for every interface, which `*` and an empty host are not
_EVERY = "all IPv4 interfaces: 0.0.0.0, all interfaces: [::]"


def parse_listen(text: str) -> tuple[str, int]:
    """A listen address: 'host:port' or '[v6addr]:port' -> (host, port).

    ValueError naming the reason (parse_hostport's: no port, no host, port 0, a port above
    65535...; or the host's: listen_host_problem) for a value bind(2) cannot take: such a
    value once passed check-config and then stopped `mirrord health` (or the daemon's
    metrics) at start."""
    host, port = parse_hostport(text, no_host=f" ({_EVERY})")
    if not is_host(host):
        raise ValueError(listen_host_problem(host, text.strip()))
    return host, port


def listen_host_problem(host: str, text: str) -> str:
    """Why `host` (is_host refused it) of the listen address `text` cannot be listened
    on, in words for a message. A host holding ':' that is no IPv6 address is not
    repeated, nor is `text`: `user:password:port` reads the password into it (a review:
    "'user:s3cret:8080': 'user:s3cret' is not an IPv6 address")."""
    if host == "*":
        return f"{text!r}: '*' is no address to listen on ({_EVERY})"
    if ":" in host and "%" in host and is_v6(host.partition("%")[0]):
        return (f"{text!r}: {host!r} is a scoped IPv6 address (%zone), which is not "
                "supported: listen on [::] or on an address without its zone")
    if ":" in host:
        return ("the host before the last ':' is no IPv6 address: write an IPv6 address in "
                "brackets, [v6addr]:port ([::]:port for all interfaces) (the value is not "
                "shown: user:password may stand there)")
    return f"{text!r}: the host {host!r} is not an IPv4 address, [IPv6 address] or host " \
           f"name ({_EVERY})"


def is_v6(text: str) -> bool:
    """True for an IPv6 literal without brackets (inet_pton(3) with AF_INET6)."""
    try:
        socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return False
    return True


def shown_url(url: str) -> str:
    """`url` with its userinfo (`user:password@`, `token@`) masked whole, for messages:
    logsetup.mask_userinfo, the rule redact applies to every URL in any text."""
    return mask_userinfo(url)


# What would be a URL's authority (RFC 3986 3.2), however mistyped: the text after a
# scheme and its slashes (`http://`, `http:/`, `https//`, `http:///`) or after leading
# slashes, else from the start (`u:pw@host`, the scheme left out), up to the first '/',
# '?' or '#'. An '@' in it is a userinfo, refused before urlsplit and before any message
# repeats the text: matched only after `//`, the three typos above fell through to the
# later errors, which printed the URL, password included.
_HEAD = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:?[/\\]+|[/\\]+)?+([^/?#]*)")
# A text a message may repeat: no '@' anywhere, and its would-be authority a host with at
# most a port of digits (`http://u:pw` with '@host' dropped reads as host u, port pw)
_SHOWABLE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:?[/\\]+|[/\\]+)?+"
                       r"(?:\[[0-9A-Fa-f:.]*\]|[^@:/?#\[\]]*)(?::[0-9]+)?(?:[/?#][^@]*)?$")


_NO_CREDENTIALS = ("must not carry credentials (user:password@): they are not sent, and "
                   "would be printed wherever the URL is; give it a URL of its own without them")


def _got(text: str) -> str:
    """`: got 'text'` for a message about URL `text`, or, when the text could hold a
    password however it is read (_SHOWABLE), a note that it is not shown."""
    if _SHOWABLE.match(text):
        return f": got {text!r}"
    return " (the value is not shown: written this way it may hold a password)"


def parse_http_url(text: str) -> str:
    """An http:// or https:// URL urllib can fetch and boto3 can use -> the text; ValueError
    otherwise, with a message that never repeats a credential.

    Refused ([failover] check_url, an S3 target's endpoint_url): a scheme other than
    http/https, no host, a port that is not a number in 1-65535, whitespace or control
    characters (http.client raises InvalidURL for them; RFC 3986 wants them
    percent-encoded) and user:password@ (neither urllib's GET nor boto3's endpoint
    authenticates from it: http.client takes `user:password@host` as the host, and the URL
    is printed in check-config, every plan, log line and failover.log). The userinfo is
    looked for wherever a mistyped URL would have its authority (_HEAD), and a message
    repeats the text only when nothing in it could be a password (_got)."""
    if "@" in _HEAD.match(text).group(1):   # before urlsplit, whose errors show the URL
        raise ValueError(_NO_CREDENTIALS)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port     # ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        reason = str(exc) if _SHOWABLE.match(text) else re.sub(r"'[^']*'", "'***'", str(exc))
        raise ValueError(f"not a URL ({reason}){_got(text)}") from None
    if "@" in parts.netloc:
        raise ValueError(_NO_CREDENTIALS)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must be an http:// or https:// URL{_got(text)}")
    if _CONTROL.search(text):
        raise ValueError(f"contains a space or control character (percent-encode it, e.g. "
                         f"%20){_got(text)}")
    if not parts.hostname:
        raise ValueError(f"is not a URL with a host{_got(text)}")
    if port == 0:
        raise ValueError(f"port 0 is not a port{_got(text)}")
    return text


_QUOTED = re.compile(r'"([^"]*)"')


def _libpq_keywords() -> frozenset[str]:
    from psycopg import pq
    return frozenset(o.keyword.decode() for o in pq.Conninfo.get_defaults())


def conninfo_params(conninfo: str) -> dict:
    """libpq's own parse of `conninfo` (key=value pairs or a postgresql:// URI, through
    psycopg's conninfo_to_dict) -> its parameters. ValueError when libpq cannot parse it,
    with libpq's reason but every quoted fragment masked unless it is a libpq keyword:
    libpq quotes the token it choked on, and that can be the password
    (`password=se cret`: `missing "=" after "cret"`; a URI: `unexpected spaces found in
    "pass word"`), which then reached failover's output and failover.log. psycopg is
    imported here only: the primary's daemon, with no [failover] section, never loads it."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        keywords = _libpq_keywords()
        reason = _QUOTED.sub(lambda m: m.group(0) if m.group(1) in keywords else '"***"',
                             " ".join(str(exc).split()))
        raise ValueError("not a valid libpq conninfo (key=value pairs or a postgresql:// "
                         f"URI): {reason}") from None


# The values libpq accepts for its enumerated parameters, from the PostgreSQL manual,
# libpq "Parameter Key Words" (34.1.2); libpq checks them only when it connects, so a typo
# (`sslmode=requir`) passed check-config and then read as "replica unreachable" in a
# failover's precheck. ssl_*_protocol_version are compared ignoring case, as libpq does.
# Only what libpq itself refuses when connecting is listed (not gsslib, used on Windows
# only, nor replication, whose value the server judges).
LIBPQ_CHOICES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "sslnegotiation": ("postgres", "direct"),
    "sslcertmode": ("disable", "allow", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby",
                             "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
    "ssl_min_protocol_version": ("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"),
    "ssl_max_protocol_version": ("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"),
}
_CASELESS = ("ssl_min_protocol_version", "ssl_max_protocol_version")
# Integer parameters (libpq's parse_int_param: an optional sign, digits, spaces around).
# connect_timeout is read by psycopg itself (psycopg.conninfo, `int(float(value))`: 1.5
# is taken), so it is checked as psycopg does.
LIBPQ_INTEGERS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                  "keepalives_count", "tcp_user_timeout")
_INTEGER = re.compile(r"^\s*[-+]?\d+\s*$", re.ASCII)


def _integer(key: str, value: str) -> bool:
    if key == "connect_timeout":
        try:
            int(float(value))
        except (ValueError, OverflowError):
            return False
        return True
    return bool(_INTEGER.match(value))


_RAW_AT = ("a host holds an '@': in a URI, an '@', '?' or '#' in the user name or password "
           "must be written percent-encoded (%40, %3F, %23) (the value is not shown)")


# A postgresql:// URI's text up to its path: where libpq looks for the userinfo's '@'.
_URI_HEAD = re.compile(r"\s*postgres(?:ql)?://([^/]*)", re.IGNORECASE)


def _userinfo_spilled(text: str, params: dict) -> bool:
    """Whether the conninfo `text`, parsed by libpq into `params`, is a postgresql:// URI
    whose user name or password held a raw '@', '?' or '#': libpq ends the userinfo at
    the first '@' before the first '/' (RFC 3986 3.2.1 wants such characters
    percent-encoded there), so the rest of the password became the host (`u:pw@tail@db`,
    `u:pw?x@tail@db`) or a query's start became the user name (`db?password=pw@tail`),
    and failover's messages and failover.log showed it (reviews, helper-136 and
    helper-137). A host never holds an '@'; a user name may (`bob%40server`, `user=a@b`)."""
    hosts = str(params.get("host") or "") + str(params.get("hostaddr") or "")
    head = _URI_HEAD.match(text)
    userinfo = head.group(1).split("@", 1)[0] if head and "@" in head.group(1) else ""
    return "@" in hosts or "?" in userinfo or "#" in userinfo


def conninfo_problem(conninfo: str) -> str:
    """Why `conninfo` (str: key=value pairs or a postgresql:// URI) cannot be used; "" when
    it can: conninfo_params (libpq's own parser), then the values libpq checks only at
    connect time: each port a number in 1-65535, an enumerated parameter one of
    LIBPQ_CHOICES, an integer one (LIBPQ_INTEGERS) a whole number. An empty value is left to
    libpq (its default). Raises nothing.

    The message names the parameter and never repeats a value of the conninfo, whatever
    the key and the form: a value in the wrong place may be the password (`port=<pw>` or
    `sslmode=<pw>` with no password= beside it; `postgresql://u:pw/db` reads as host u,
    port pw), and it reached check-config's output, failover's and failover.log."""
    try:
        params = conninfo_params(conninfo)
        dbname = str(params.get("dbname") or "")   # libpq expands a dbname that is a URI
        inner = conninfo_params(dbname) if "://" in dbname else {}
    except ValueError as exc:
        return str(exc)
    if _userinfo_spilled(conninfo, params) or _userinfo_spilled(dbname, inner):
        return _RAW_AT
    ports = str(params.get("port") or "")
    if ports and not all(p == "" or (p.isdigit() and 0 < int(p) < 65536)
                         for p in ports.split(",")):
        why = "; in a URI it may be a password whose @host is missing" if "://" in conninfo else ""
        return ("the port is not a port number (1-65535, or a comma list of them; the value "
                f"is not shown{why})")
    for key, value in params.items():
        value = str(value or "")
        choices = LIBPQ_CHOICES.get(key)
        if value and choices and (value.lower() if key in _CASELESS else value) not in choices:
            return (f"{key} is not one libpq accepts (one of {', '.join(choices)}; the value "
                    "is not shown)")
        if value and key in LIBPQ_INTEGERS and not _integer(key, value):
            return f"{key} is not a whole number (the value is not shown)"
    return ""


def conninfo_password(conninfo: str) -> str:
    """The password `conninfo` holds, "" when none (or when it cannot be parsed: the
    file's loading reports that through conninfo_problem)."""
    try:
        return str(conninfo_params(conninfo).get("password") or "")
    except ValueError:
        return ""
