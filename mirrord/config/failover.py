"""Reading the mirror host's sections: [failover] (memcached servers, hooks, the
site check) and [health].
"""

from __future__ import annotations

import dataclasses
import os
import re

from mirrord.config.addresses import (
    _HOSTNAME,
    conninfo_problem,
    is_v6,
    parse_http_url,
    parse_listen,
)
from mirrord.config.model import FailoverConfig, HealthConfig, TargetConfig
from mirrord.config.hostport import NOT_A_PORT, is_port_text, parse_hostport
from mirrord.config.values import (
    _Reader, parse_command, parse_duration, parse_list, parse_timeout,
)

# The longest timeout handed on as a C int of milliseconds: 2**31 - 1 ms, 2147483.647 s
# (about 24.8 days), far below parse_duration's own limit (threading.TIMEOUT_MAX).
# - statement_timeout: PostgreSQL's GUC is an int of ms (set_config refused "2160000000ms",
#   "Value exceeds integer range", so every connect failed after check-config passed);
# - connect_timeout: also every memcached server's socket timeout (pymemcache), and
#   check_timeout: urllib's socket timeout: CPython hands a socket timeout to poll(2) as an
#   int of ms and does not check it, so a longer one wraps (4294967.297 s timed out after
#   1 ms). libpq's own connect_timeout (an int of seconds) is far wider.
MAX_INT_MS = (2**31 - 1) / 1000
_INT_MS_WHY = {"statement_timeout": "PostgreSQL's statement_timeout is an int of milliseconds",
               "connect_timeout": "it is also each memcached server's socket timeout, an int "
                                  "of milliseconds",
               "check_timeout": "it is check_url's socket timeout, an int of milliseconds"}


def _int_ms_timeout(key: str):
    """parse_timeout for `key`, also at most MAX_INT_MS seconds (ValueError naming why)."""
    def parse(text: str) -> float:
        seconds = parse_timeout(text)
        if seconds > MAX_INT_MS:
            raise ValueError(f"too long: {text!r} (at most {MAX_INT_MS:.3f}s, about 24.8 days: "
                             f"{_INT_MS_WHY[key]})")
        return seconds
    return parse

HOOK_NAMES = ("pre_failover", "post_failover", "pre_switchover", "post_switchover",
              "pre_failback", "post_failback")
_HEALTH_KEYS = {"listen", "interval"}
_FAILOVER_KEYS = {"database", "primary_database", "max_replay_lag", "heartbeat_target",
                  "max_heartbeat_age", "mode", "link", "readonly", "readwrite", "flag", "message",
                  "memcached", "reload_command", "connect_timeout", "statement_timeout",
                  "switchover_timeout", "max_clock_skew", "hook_timeout", "check_url",
                  "check_pattern", "check_timeout"} | set(HOOK_NAMES)




def parse_memcached_server(item: str) -> tuple[str, int] | str:
    """One memcached server: 'host:port', 'host' (port 11211), '[v6addr]:port', or an
    absolute UNIX socket path ('/run/memcached/memcached.sock', as memcached -s takes it).

    Returns (host, port) or the path; ValueError for anything else (a relative path, a bare
    IPv6 address without brackets, a port out of range), so check-config refuses what the
    flush could not reach (a socket path once passed as a host name on port 11211).
    An item holding '@' (user:password@host) or a space (`host:port --password x`), or
    whose part after the last ':' is not a number (`user:password`, the @host forgotten,
    even when it also holds '/' or more ':'), is refused without repeating it: it may
    hold a credential (the README's promise)."""
    if "@" in item:
        raise ValueError("credentials in a memcached address are not supported (the flush "
                         "speaks memcached's text protocol, no authentication); remove the "
                         "user:password@ part (the value is not shown: it may hold a password)")
    if any(c.isspace() for c in item):
        raise ValueError("a memcached address holds a space; options (a password flag, say) are "
                         "not supported, write only host:port (the value is not shown: it may "
                         "hold a password)")
    if not item.startswith(("/", "[")) and ":" in item \
            and not is_port_text(item.rpartition(":")[2]):
        raise ValueError(NOT_A_PORT)     # `user:password`, its @host forgotten ([v6]: below)
    if item.startswith("/"):
        if "\0" in item or item.endswith("/"):
            raise ValueError(f"not a socket path: {item!r}")
        return os.path.normpath(item)
    if "/" in item:
        raise ValueError(f"{item!r}: a UNIX socket path must be absolute")
    if item.startswith("["):
        addr, closed, port = item[1:].partition("]")
        port = port[1:] if port.startswith(":") else ("11211" if not port else "x")
        if not closed or not is_v6(addr):
            raise ValueError(f"{item!r}: not an IPv6 address in brackets")
        text = f"[{addr}]:{port}"
    elif item.count(":") > 1:
        # repeated only when it is an IPv6 address (maybe with a port): `user:pa:ss` is not
        shown = f"{item!r}" if is_v6(item) or is_v6(item.rpartition(":")[0]) \
            else "an address with several ':' (not shown: it may hold a password)"
        raise ValueError(f"{shown}: write an IPv6 address in brackets, like [::1]:11211")
    else:
        text = item
    host, port_no = parse_hostport(text, 11211)
    if ":" not in host and not _HOSTNAME.match(host):
        raise ValueError(f"{item!r}: not a host name or address")
    return host, port_no


def _parse_memcached(text: str) -> tuple[tuple[str, int] | str, ...]:
    """A comma-separated list of servers; see parse_memcached_server."""
    problems, servers = [], []
    for item in parse_list(text):
        try:
            servers.append(parse_memcached_server(item))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems) + " (use host:port, [v6addr]:port or an absolute "
                         "socket path)")
    if text.strip() and not servers:   # "," names none: a typo, never "no memcached"
        raise ValueError("names no server (leave the key out for none)")
    return tuple(servers)


def _read_hooks(r: _Reader, s: str) -> tuple[tuple[str, str], ...]:
    """Hook commands, split like argv (shlex) here so a bad quote is a config error."""
    hooks = []
    for name in HOOK_NAMES:
        text = r.raw(s, name, "") or ""
        if not text:
            continue
        try:
            parse_command(text)
        except ValueError as exc:
            r.problem(s, name, str(exc))
            continue
        hooks.append((name, text))
    return tuple(hooks)


def _read_conninfo(r: _Reader, s: str, key: str) -> str:
    text = r.raw(s, key, "") or ""
    problem = conninfo_problem(text) if text else ""
    if problem:
        r.problem(s, key, problem)
    return text


def _read_check(r: _Reader, s: str) -> tuple[str, str]:
    url = r.raw(s, "check_url", "") or ""
    pattern = r.raw(s, "check_pattern", "") or ""
    if url:
        try:
            parse_http_url(url)
        except ValueError as exc:
            r.problem(s, "check_url", str(exc))
            url = ""
    if pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            r.problem(s, "check_pattern", f"not a regular expression: {exc}")
        except (OverflowError, RecursionError) as exc:
            # `a{99999999999}` (a repeat count over sre's limit) or thousands of nested
            # groups: a traceback on every command that loads the config (a review, helper-144)
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            r.problem(s, "check_pattern", f"not a regular expression Python can compile: {why}")
        if not url:
            r.problem(s, "check_pattern", "needs check_url (the page the pattern is matched in)")
    return url, pattern


def _read_health(r: _Reader) -> HealthConfig:
    s = "health"
    if not r.parser.has_section(s):
        return HealthConfig()
    r.check_keys(s, _HEALTH_KEYS)
    # parse_timeout: greater than zero (0 measured without a pause, a busy loop)
    return HealthConfig(listen=r.get(s, "listen", parse_listen, HealthConfig.listen),
                        interval=r.get(s, "interval", parse_timeout, 2.0))


def _read_failover(r: _Reader, targets: dict[str, TargetConfig]) -> FailoverConfig | None:
    s = "failover"
    if not r.parser.has_section(s):
        return None
    r.check_keys(s, _FAILOVER_KEYS)
    mode = r.get(s, "mode", str.lower, "symlink")
    cfg = FailoverConfig(
        database=_read_conninfo(r, s, "database"),
        primary_database=_read_conninfo(r, s, "primary_database"),
        max_replay_lag=r.get(s, "max_replay_lag", parse_duration, 30.0),
        heartbeat_target=r.raw(s, "heartbeat_target", "") or "",
        # above zero: a heartbeat is never 0 s old, switchover would refuse every time
        max_heartbeat_age=r.get(s, "max_heartbeat_age", parse_timeout, 60.0),
        mode=mode,
        link=r.path(s, "link", follow_links=False),
        # as written, never resolved: the link must name `readonly` itself, so a deploy that
        # repoints a symlinked readonly (releases/N/...) is followed, not frozen at load
        readonly=r.path(s, "readonly", follow_links=False),
        readwrite=r.path(s, "readwrite", follow_links=False),
        # its directory resolved, its own name never: a symlink planted at `flag` must fail
        # app.flag (read with O_NOFOLLOW), not have its target written by a root failover
        flag=r.path(s, "flag", own_name=True),
        message=r.get(s, "message", str, FailoverConfig.message),
        memcached=r.get(s, "memcached", _parse_memcached, ()),
        reload_command=r.get(s, "reload_command", parse_command, ""),
        connect_timeout=r.get(s, "connect_timeout", _int_ms_timeout("connect_timeout"), 5.0),
        statement_timeout=r.get(s, "statement_timeout", _int_ms_timeout("statement_timeout"), 5.0),
        # above zero: 0 ended every wait at once, so switchover always refused
        switchover_timeout=r.get(s, "switchover_timeout", parse_timeout, 300.0),
        max_clock_skew=r.get(s, "max_clock_skew", parse_duration, 5.0),
        hooks=_read_hooks(r, s),
        hook_timeout=r.get(s, "hook_timeout", parse_timeout, 30.0),
        check_timeout=r.get(s, "check_timeout", _int_ms_timeout("check_timeout"), 10.0),
    )
    url, pattern = _read_check(r, s)
    cfg = dataclasses.replace(cfg, check_url=url, check_pattern=pattern)
    if not cfg.database:
        r.problem(s, "database", "is required: the replica's libpq conninfo")
    if cfg.heartbeat_target and cfg.heartbeat_target not in targets:
        r.problem(s, "heartbeat_target", f"names no [target:{cfg.heartbeat_target}] section")
    if mode == "symlink":
        for key in ("link", "readonly", "readwrite"):
            if getattr(cfg, key) is None and not r.raw(s, key):   # else already a problem
                r.problem(s, key, "is required with mode = symlink")
    elif mode == "flagfile":
        if cfg.flag is None and not r.raw(s, "flag"):
            r.problem(s, "flag", "is required with mode = flagfile")
    else:
        r.problem(s, "mode", f"must be symlink or flagfile, got {mode!r}")
    return cfg
