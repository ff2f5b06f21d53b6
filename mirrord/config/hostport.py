"""host:port values ([health] listen, [mirrord] metrics_listen, [failover] memcached) and
TCP ports ([target:NAME] port), each refusal saying what is wrong with the value.

`listen = 127.0.0.1:0` was refused as "not host:port: '127.0.0.1:0'", which it is; the
trouble was port 0. So a refusal names its reason: no port, nothing after the ':', no
host, a '[' without its ']', port 0 (no fixed port), a port above 65535. A port that is
not digits is never repeated (NOT_A_PORT: `user:password` with its @host forgotten
reads the password as the port). What the host may be is the caller's to check
(addresses.parse_listen, failover.parse_memcached_server).
"""

from __future__ import annotations

from mirrord.config.values import parse_count

# what follows the last ':' is no port number: `user:password` written without its `@host`
# reads the password as the port, so the value is not repeated (as for a URI's port)
NOT_A_PORT = ("not host:port: what follows the last ':' is not a port number (the value is "
              "not shown: user:password written without @host reads the password as the port)")
PORTS = "a port is a number from 1 to 65535"
# an '@' or a space: `user:password@host:port`, a URL or a command line where host:port was
# due; none of the messages below may then repeat the value (a review: "no port after the
# last ':' in 'user:s3cretpw@host:'", printed before any secret is registered for masking)
HOLDS_USERINFO = ("not host:port: the value holds an '@' or a space (the value is not shown: "
                  "user:password@host, or a command line, may hold a password)")


def is_port_text(port: str) -> bool:
    """True when `port` (the text after a host's ':') is written in digits only: a port,
    maybe out of range, never a password to withhold."""
    return port.isascii() and port.isdigit()


def port_number(digits: str, subject: str) -> int:
    """The TCP port written as ASCII `digits` (is_port_text) -> int. ValueError saying why
    it is none: 0 (not a fixed port: bound, the system picks a free one at random; connected
    to, nothing answers) or above 65535. `subject` names it in the message ("port 0 in
    '127.0.0.1:0'", or the value of a port key as written)."""
    significant = digits.lstrip("0")
    if not significant:
        raise ValueError(f"{subject} is not a fixed port: {PORTS}")
    if len(significant) > 5 or int(significant) > 65535:   # no int() of a thousand digits
        raise ValueError(f"{subject} is too large: {PORTS}")
    return int(significant)


def parse_port(text: str) -> int:
    """A TCP port, 1 to 65535 ([target:NAME] port); ValueError saying why not (not a whole
    number: parse_count's words; 0 or too large: port_number's)."""
    stripped = text.strip()
    return port_number(stripped if is_port_text(stripped) else str(parse_count(text)),
                       shown(text.strip()))


def shown(text: str) -> str:
    """repr(`text`) for a message, cut after 40 characters (a value of thousands of
    digits is not repeated whole)."""
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}..."


def parse_hostport(text: str, default_port: int | None = None, *,
                   no_host: str = "") -> tuple[str, int]:
    """'host:port' or '[v6addr]:port' (or 'host' / '[v6addr]' with `default_port`) ->
    (host, port), the host without its brackets and not checked further.

    ValueError naming the reason: no port, nothing after the ':', no host (`no_host`, a
    hint, is added: which address means every interface, for a listen address), a '['
    without its ']', port 0, a port above 65535; a port that is not digits is not
    repeated (NOT_A_PORT), nor is a text holding ':' that has no port at all, nor one
    holding an '@' or a space (HOLDS_USERINFO)."""
    text = text.strip()
    if "@" in text or any(c.isspace() for c in text):
        raise ValueError(HOLDS_USERINFO)
    if text.startswith("[") and "]" not in text:
        raise ValueError("the '[' of an IPv6 address has no closing ']': write [v6addr]:port")
    host, sep, port = text.rpartition(":")
    if not sep or text.endswith("]"):   # 'host' or '[v6addr]': no port written
        if default_port is None:
            what = shown(text) if ":" not in text else "an IPv6 address in brackets"
            raise ValueError(f"not host:port: {what} has no port (write host:port, or "
                             "[v6addr]:port for IPv6)")
        host, port = text, str(default_port)
    if not port:
        raise ValueError(f"no port after the last ':' in {shown(text)} (write host:port)")
    if not is_port_text(port):
        raise ValueError(NOT_A_PORT)
    host = host.strip("[]")
    if not host:
        raise ValueError(f"no host before the ':' in {shown(text)}{no_host}")
    return host, port_number(port, f"port {port.lstrip('0')[:12] or 0} in {shown(text)}")
