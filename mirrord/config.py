"""The INI file, parsed once into frozen dataclasses.

Every problem in the file is collected and reported together (file, section,
key, what is wrong), so an operator fixes the file in one go. Relative paths
are resolved against the directory holding the config file, so the same file
works whatever the current directory is. Nothing here talks to a service.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
import shlex
import socket
import urllib.parse
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, TypeVar

from mirrord.errors import ConfigError, ConfigProblem
from mirrord.exclude import ExcludeMatcher, PatternError, check_pattern, compile_excludes

DEFAULT_PATHS = ("./mirrord.ini", "/etc/mirrord/mirrord.ini")
TARGET_TYPES = ("local", "s3", "rsync")
LOG_LEVELS = ("debug", "info", "warning", "error")
SECRET_KEYS = {"secret_access_key", "access_key_id"}

T = TypeVar("T")


# ----------------------------------------------------------------- value types


@dataclass(frozen=True)
class MirrordSettings:
    state_dir: Path
    workers: int = 8
    heartbeat_interval: float = 5.0
    log_level: str = "info"
    log_format: str = "text"
    metrics_listen: tuple[str, int] | None = None
    hostname: str = ""

    @property
    def journal_path(self) -> Path:
        """The state database: written by the daemon and `mirrord reconcile`, read by status."""
        return self.state_dir / "journal.db"


@dataclass(frozen=True)
class SourceConfig:
    name: str
    path: Path
    targets: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    dest: str = ""
    watcher: str = "inotify"  # inotify | fanotify | auto (mirrord.watch.select)

    @cached_property  # frozen without slots: cached_property writes __dict__ directly
    def _excluder(self) -> ExcludeMatcher:
        return compile_excludes(self.exclude)

    def excluded(self, relpath: str, *, is_dir: bool = False) -> bool:
        """True when `relpath` (relative to `path`, '/'-separated) or one of its ancestor
        directories matches `exclude` (gitignore syntax: see mirrord/exclude.py).

        Pass `is_dir=True` when `relpath` is a directory, or a directory-only pattern
        (`thumb/`) cannot match the path itself. Raises PatternError for a pattern
        that load() would have refused (only when built by hand, as in tests).
        """
        return self._excluder.excluded(relpath, is_dir=is_dir)


@dataclass(frozen=True)
class TargetConfig:
    """Common part of every target section; `options` holds the type's own typed settings."""

    name: str
    type: str
    workers: int
    local: LocalOptions | None = None
    s3: S3Options | None = None
    rsync: RsyncOptions | None = None


@dataclass(frozen=True)
class LocalOptions:
    path: Path
    fsync: bool = True


@dataclass(frozen=True)
class S3Options:
    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    addressing_style: str = "auto"
    acl: str = ""
    storage_class: str = ""
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    ca_bundle: str = ""


@dataclass(frozen=True)
class RsyncOptions:
    host: str
    path: str
    port: int = 22
    user: str = ""
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    strict_host_key_checking: str = "accept-new"
    rsync_path: str = "rsync"
    ssh_command: str = "ssh"
    connect_timeout: float = 10.0
    batch_size: int = 5000


@dataclass(frozen=True)
class ReconcileConfig:
    every: float = 0.0
    delete: bool = True
    max_delete: int = 1000
    max_delete_percent: float | None = None
    checksum: bool = False


@dataclass(frozen=True)
class FailoverConfig:
    database: str = field(default="", repr=False)
    primary_database: str = field(default="", repr=False)
    max_replay_lag: float = 30.0
    heartbeat_target: str = ""
    max_heartbeat_age: float = 60.0
    mode: str = "symlink"
    link: Path | None = None
    readonly: Path | None = None
    readwrite: Path | None = None
    flag: Path | None = None
    message: str = "Read-only: the site is served from its mirror."
    # each server is (host, port) over TCP or an absolute UNIX socket path (str)
    memcached: tuple[tuple[str, int] | str, ...] = ()
    reload_command: str = ""
    connect_timeout: float = 5.0
    statement_timeout: float = 5.0
    switchover_timeout: float = 300.0
    max_clock_skew: float = 5.0     # seconds two hosts' clocks may differ before it is flagged
    hooks: tuple[tuple[str, str], ...] = ()    # (pre_failover, "cmd args"), ... as configured
    hook_timeout: float = 30.0
    check_url: str = ""
    check_pattern: str = ""
    check_timeout: float = 10.0

    def hook(self, name: str) -> str:
        """The command configured for hook `name` (e.g. "pre_failover"), "" when none."""
        return dict(self.hooks).get(name, "")


@dataclass(frozen=True)
class HealthConfig:
    """[health]: where `mirrord health` listens on the mirror host, how often it checks."""

    listen: tuple[str, int] = ("127.0.0.1", 9188)
    interval: float = 2.0


@dataclass(frozen=True)
class Config:
    path: Path
    mirrord: MirrordSettings
    sources: tuple[SourceConfig, ...]
    targets: dict[str, TargetConfig]
    reconcile: ReconcileConfig
    failover: FailoverConfig | None
    warnings: tuple[str, ...] = ()
    health: HealthConfig = HealthConfig()

    def target(self, name: str) -> TargetConfig:
        return self.targets[name]

    def sources_for(self, target: str) -> tuple[SourceConfig, ...]:
        return tuple(s for s in self.sources if target in s.targets)

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


# ------------------------------------------------------------- value parsers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}


def parse_duration(text: str) -> float:
    """'500ms', '5s', '10m', '1h', '2d' or plain seconds -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use 500ms, 5s, 10m, 1h or plain seconds)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def parse_size(text: str) -> int:
    """'8MiB', '64M', '1024' -> bytes (binary multiples)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use 8MiB, 64M or plain bytes)")
    unit = (m.group(2) or "b").lower()[0]
    return int(m.group(1)) * {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]


def parse_positive_int(text: str) -> int:
    value = int(text.strip())
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValueError(f"not host:port: {text!r}")
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {text!r}")
    return host, int(port)


def parse_every(text: str) -> float:
    if text.strip().lower() in ("", "0", "off", "no", "never"):
        return 0.0
    return parse_duration(text)


# ------------------------------------------------------------------- reader


class _Reader:
    """Reads one INI file, remembering every problem instead of stopping at the first."""

    def __init__(self, path: Path, parser: configparser.RawConfigParser):
        self.file = path
        self.base = path.parent
        self.parser = parser
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def problem(self, section: str, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(str(self.file), section, key, message))

    def raw(self, section: str, key: str, default: str | None = None) -> str | None:
        if self.parser.has_option(section, key):
            return self.parser.get(section, key).strip()
        return default

    def get(self, section: str, key: str, conv: Callable[[str], T], default: T) -> T:
        text = self.raw(section, key)
        if text is None or text == "":
            return default
        try:
            return conv(text)
        except ValueError as exc:
            self.problem(section, key, str(exc))
            return default

    def required(self, section: str, key: str) -> str:
        text = self.raw(section, key)
        if not text:
            self.problem(section, key, "is required")
            return ""
        return text

    def path(self, section: str, key: str, *, required: bool = False,
             follow_links: bool = True) -> Path | None:
        text = self.required(section, key) if required else self.raw(section, key)
        if not text:
            return None
        if not follow_links:  # the path names a symlink itself (failover `link`): keep it
            return Path(os.path.abspath(self.base / os.path.expanduser(text)))
        return (self.base / os.path.expanduser(text)).resolve()

    def check_keys(self, section: str, allowed: set[str]) -> None:
        for key in self.parser.options(section):
            if key not in allowed:
                self.problem(section, key, f"unknown key (known: {', '.join(sorted(allowed))})")


_MIRRORD_KEYS = {"state_dir", "workers", "heartbeat_interval", "log_level", "log_format",
                 "metrics_listen", "hostname"}
_SOURCE_KEYS = {"path", "targets", "exclude", "dest", "watcher"}
WATCHERS = ("auto", "inotify", "fanotify")
_COMMON_TARGET_KEYS = {"type", "workers"}
_TARGET_KEYS = {
    "local": {"path", "fsync"},
    "s3": {"bucket", "prefix", "endpoint_url", "region", "access_key_id", "secret_access_key",
           "addressing_style", "acl", "storage_class", "multipart_threshold",
           "multipart_chunksize", "ca_bundle"},
    "rsync": {"host", "port", "user", "path", "ssh_key", "known_hosts",
              "strict_host_key_checking", "rsync_path", "ssh_command", "connect_timeout",
              "batch_size"},
}
_RECONCILE_KEYS = {"every", "delete", "max_delete", "checksum"}
HOOK_NAMES = ("pre_failover", "post_failover", "pre_switchover", "post_switchover",
              "pre_failback", "post_failback")
_HEALTH_KEYS = {"listen", "interval"}
_FAILOVER_KEYS = {"database", "primary_database", "max_replay_lag", "heartbeat_target",
                  "max_heartbeat_age", "mode", "link", "readonly", "readwrite", "flag", "message",
                  "memcached", "reload_command", "connect_timeout", "statement_timeout",
                  "switchover_timeout", "max_clock_skew", "hook_timeout", "check_url",
                  "check_pattern", "check_timeout"} | set(HOOK_NAMES)


def _read_mirrord(r: _Reader) -> MirrordSettings:
    s = "mirrord"
    if not r.parser.has_section(s):
        return MirrordSettings(state_dir=(r.base / "state").resolve(),
                               hostname=socket.gethostname())
    r.check_keys(s, _MIRRORD_KEYS)
    level = r.get(s, "log_level", str.lower, "info")
    if level not in LOG_LEVELS:
        r.problem(s, "log_level", f"must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    fmt = r.get(s, "log_format", str.lower, "text")
    if fmt not in ("text", "json"):
        r.problem(s, "log_format", f"must be text or json, got {fmt!r}")
    interval = r.get(s, "heartbeat_interval", parse_duration, 5.0)
    if interval <= 0:
        r.problem(s, "heartbeat_interval", "must be greater than zero")
    return MirrordSettings(
        state_dir=r.path(s, "state_dir") or (r.base / "state").resolve(),
        workers=r.get(s, "workers", parse_positive_int, 8),
        heartbeat_interval=interval,
        log_level=level,
        log_format=fmt,
        metrics_listen=r.get(s, "metrics_listen", parse_hostport, None),
        hostname=r.get(s, "hostname", str, "") or socket.gethostname(),
    )


def _normalise_dest(r: _Reader, section: str, text: str) -> str:
    dest = text.strip().strip("/")
    if any(part in ("", ".", "..") for part in dest.split("/")) and dest:
        r.problem(section, "dest", f"must be a plain relative sub-path, got {text!r}")
        return ""
    if dest.split("/")[0] == ".mirrord":
        r.problem(section, "dest", "must not be inside .mirrord, which is mirrord's own area")
    return dest


def _read_exclude(r: _Reader, section: str) -> tuple[str, ...]:
    """The `exclude` comma list; each pattern pathspec refuses is its own problem."""
    patterns = r.get(section, "exclude", parse_list, ())
    for pattern in patterns:
        try:
            check_pattern(pattern)
        except PatternError as exc:
            r.problem(section, "exclude", str(exc))
    return patterns


def _read_source(r: _Reader, section: str, name: str) -> SourceConfig:
    r.check_keys(section, _SOURCE_KEYS)
    targets = r.get(section, "targets", parse_list, ())
    if not targets:
        r.problem(section, "targets", "is required: a comma list of target names")
    return SourceConfig(
        name=name,
        path=r.path(section, "path", required=True) or Path("/nonexistent"),
        targets=targets,
        exclude=_read_exclude(r, section),
        dest=_normalise_dest(r, section, r.raw(section, "dest", "") or ""),
        watcher=_read_watcher(r, section),
    )


def _read_watcher(r: _Reader, section: str) -> str:
    value = (r.raw(section, "watcher", "inotify") or "inotify").strip().lower()
    if value not in WATCHERS:
        r.problem(section, "watcher", f"must be one of {', '.join(WATCHERS)}, not {value!r}")
        return "inotify"
    return value


def _read_local(r: _Reader, section: str) -> LocalOptions:
    return LocalOptions(
        path=r.path(section, "path", required=True) or Path("/nonexistent"),
        fsync=r.get(section, "fsync", parse_bool, True),
    )


def _read_s3(r: _Reader, section: str) -> S3Options:
    bucket = r.required(section, "bucket")
    if bucket and not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
        r.problem(section, "bucket", f"not a valid bucket name: {bucket!r}")
    prefix = r.raw(section, "prefix", "") or ""
    if prefix.startswith("/"):
        r.problem(section, "prefix", "must not start with '/'")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    style = r.get(section, "addressing_style", str.lower, "auto")
    if style not in ("auto", "path", "virtual"):
        r.problem(section, "addressing_style", f"must be auto, path or virtual, got {style!r}")
    access = r.raw(section, "access_key_id", "") or ""
    secret = r.raw(section, "secret_access_key", "") or ""
    if bool(access) != bool(secret):
        r.problem(section, "secret_access_key" if access else "access_key_id",
                  "access_key_id and secret_access_key go together")
    chunk = r.get(section, "multipart_chunksize", parse_size, 16 << 20)
    if chunk < 5 << 20:
        r.problem(section, "multipart_chunksize", "must be at least 5MiB (an S3 limit)")
    return S3Options(
        bucket=bucket, prefix=prefix,
        endpoint_url=r.raw(section, "endpoint_url", "") or "",
        region=r.raw(section, "region", "") or "us-east-1",
        access_key_id=access, secret_access_key=secret, addressing_style=style,
        acl=r.raw(section, "acl", "") or "",
        storage_class=r.raw(section, "storage_class", "") or "",
        multipart_threshold=r.get(section, "multipart_threshold", parse_size, 64 << 20),
        multipart_chunksize=chunk,
        ca_bundle=r.raw(section, "ca_bundle", "") or "",
    )


def _read_rsync(r: _Reader, section: str) -> RsyncOptions:
    host = r.required(section, "host")
    if host.startswith("-"):
        r.problem(section, "host", "must not start with '-'")
    user = r.raw(section, "user", "") or ""
    if user.startswith("-") or "@" in user:
        r.problem(section, "user", f"not a valid user name: {user!r}")
    path = r.required(section, "path")
    if path and not path.startswith("/"):
        r.problem(section, "path", "must be an absolute path on the mirror host")
    strict = r.get(section, "strict_host_key_checking", str.lower, "accept-new")
    if strict not in ("yes", "no", "accept-new"):
        r.problem(section, "strict_host_key_checking", "must be yes, no or accept-new")
    port = r.get(section, "port", int, 22)
    if not 0 < port < 65536:
        r.problem(section, "port", f"not a port number: {port}")
    return RsyncOptions(
        host=host, path=path.rstrip("/") or "/", port=port, user=user,
        ssh_key=r.path(section, "ssh_key"), known_hosts=r.path(section, "known_hosts"),
        strict_host_key_checking=strict,
        rsync_path=r.raw(section, "rsync_path", "") or "rsync",
        ssh_command=r.raw(section, "ssh_command", "") or "ssh",
        connect_timeout=r.get(section, "connect_timeout", parse_duration, 10.0),
        batch_size=r.get(section, "batch_size", parse_positive_int, 5000),
    )


# The rsync target's worker count unless its section sets one. Measured on a first sync
# of 5,000 files (693 MiB) over loopback ssh: 8 parallel rsync runs used 1.4-1.6x the CPU
# of 2 (more, smaller runs; more remote sessions) and finished later, not sooner.
RSYNC_DEFAULT_WORKERS = 2


def _read_target(r: _Reader, section: str, name: str, default_workers: int) -> TargetConfig:
    ttype = (r.raw(section, "type", "") or "").lower()
    if ttype not in TARGET_TYPES:
        r.problem(section, "type", f"must be one of {', '.join(TARGET_TYPES)}, got {ttype!r}")
        r.check_keys(section, _COMMON_TARGET_KEYS | set().union(*_TARGET_KEYS.values()))
        return TargetConfig(name=name, type=ttype or "?", workers=default_workers)
    r.check_keys(section, _COMMON_TARGET_KEYS | _TARGET_KEYS[ttype])
    if ttype == "rsync":   # parallel rsync runs share one SSH connection and the CPU: see the constant
        default_workers = min(default_workers, RSYNC_DEFAULT_WORKERS)
    workers = r.get(section, "workers", parse_positive_int, default_workers)
    opts = {"local": _read_local, "s3": _read_s3, "rsync": _read_rsync}[ttype](r, section)
    return TargetConfig(name=name, type=ttype, workers=workers, **{ttype: opts})


def _read_reconcile(r: _Reader) -> ReconcileConfig:
    s = "reconcile"
    if not r.parser.has_section(s):
        return ReconcileConfig()
    r.check_keys(s, _RECONCILE_KEYS)
    max_delete, percent = 1000, None
    text = r.raw(s, "max_delete", "") or ""
    if text:
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
                if not 0 <= percent <= 100:
                    raise ValueError(f"percentage out of range: {text!r}")
                max_delete = 0
            else:
                max_delete = int(text)
                if max_delete < 0:
                    raise ValueError(f"must not be negative: {text!r}")
        except ValueError as exc:
            r.problem(s, "max_delete", f"{exc} (a count like 1000 or a percentage like 5%)")
    return ReconcileConfig(
        every=r.get(s, "every", parse_every, 0.0),
        delete=r.get(s, "delete", parse_bool, True),
        max_delete=max_delete,
        max_delete_percent=percent,
        checksum=r.get(s, "checksum", parse_bool, False),
    )


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def parse_memcached_server(item: str) -> tuple[str, int] | str:
    """One memcached server: 'host:port', 'host' (port 11211), '[v6addr]:port', or an
    absolute UNIX socket path ('/run/memcached/memcached.sock', as memcached -s takes it).

    Returns (host, port) or the path; ValueError for anything else (a relative path, a bare
    IPv6 address without brackets, a port out of range), so check-config refuses what the
    flush could not reach (a socket path once passed as a host name on port 11211)."""
    if item.startswith("/"):
        if "\0" in item or item.endswith("/"):
            raise ValueError(f"not a socket path: {item!r}")
        return os.path.normpath(item)
    if "/" in item:
        raise ValueError(f"{item!r}: a UNIX socket path must be absolute")
    if item.startswith("["):
        addr, closed, port = item[1:].partition("]")
        port = port[1:] if port.startswith(":") else ("11211" if not port else "x")
        try:
            if not closed:
                raise OSError("no closing bracket")
            socket.inet_pton(socket.AF_INET6, addr)
        except OSError:
            raise ValueError(f"{item!r}: not an IPv6 address in brackets") from None
        text = f"[{addr}]:{port}"
    elif item.count(":") > 1:
        raise ValueError(f"{item!r}: write an IPv6 address in brackets, like [::1]:11211")
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
    return tuple(servers)


def _read_hooks(r: _Reader, s: str) -> tuple[tuple[str, str], ...]:
    """Hook commands, split like argv (shlex) here so a bad quote is a config error."""
    hooks = []
    for name in HOOK_NAMES:
        text = r.raw(s, name, "") or ""
        if not text:
            continue
        try:
            if not shlex.split(text):
                raise ValueError("empty command")
        except ValueError as exc:
            r.problem(s, name, f"cannot split into a command line: {exc}")
            continue
        hooks.append((name, text))
    return tuple(hooks)


def _read_check(r: _Reader, s: str) -> tuple[str, str]:
    url = r.raw(s, "check_url", "") or ""
    pattern = r.raw(s, "check_pattern", "") or ""
    if url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        r.problem(s, "check_url", f"must be an http:// or https:// URL, got {url!r}")
    if pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            r.problem(s, "check_pattern", f"not a regular expression: {exc}")
        if not url:
            r.problem(s, "check_pattern", "needs check_url (the page the pattern is matched in)")
    return url, pattern


def _read_health(r: _Reader) -> HealthConfig:
    s = "health"
    if not r.parser.has_section(s):
        return HealthConfig()
    r.check_keys(s, _HEALTH_KEYS)
    return HealthConfig(listen=r.get(s, "listen", parse_hostport, HealthConfig.listen),
                        interval=r.get(s, "interval", parse_duration, 2.0))


def _read_failover(r: _Reader, targets: dict[str, TargetConfig]) -> FailoverConfig | None:
    s = "failover"
    if not r.parser.has_section(s):
        return None
    r.check_keys(s, _FAILOVER_KEYS)
    mode = r.get(s, "mode", str.lower, "symlink")
    cfg = FailoverConfig(
        database=r.raw(s, "database", "") or "",
        primary_database=r.raw(s, "primary_database", "") or "",
        max_replay_lag=r.get(s, "max_replay_lag", parse_duration, 30.0),
        heartbeat_target=r.raw(s, "heartbeat_target", "") or "",
        max_heartbeat_age=r.get(s, "max_heartbeat_age", parse_duration, 60.0),
        mode=mode,
        link=r.path(s, "link", follow_links=False),
        readonly=r.path(s, "readonly"), readwrite=r.path(s, "readwrite"),
        flag=r.path(s, "flag"),
        message=r.raw(s, "message", "") or FailoverConfig.message,
        memcached=r.get(s, "memcached", _parse_memcached, ()),
        reload_command=r.raw(s, "reload_command", "") or "",
        connect_timeout=r.get(s, "connect_timeout", parse_duration, 5.0),
        statement_timeout=r.get(s, "statement_timeout", parse_duration, 5.0),
        switchover_timeout=r.get(s, "switchover_timeout", parse_duration, 300.0),
        max_clock_skew=r.get(s, "max_clock_skew", parse_duration, 5.0),
        hooks=_read_hooks(r, s),
        hook_timeout=r.get(s, "hook_timeout", parse_duration, 30.0),
        check_timeout=r.get(s, "check_timeout", parse_duration, 10.0),
    )
    url, pattern = _read_check(r, s)
    cfg = dataclasses.replace(cfg, check_url=url, check_pattern=pattern)
    if not cfg.database:
        r.problem(s, "database", "is required: the replica's libpq conninfo")
    if cfg.heartbeat_target and cfg.heartbeat_target not in targets:
        r.problem(s, "heartbeat_target", f"names no [target:{cfg.heartbeat_target}] section")
    if mode == "symlink":
        for key in ("link", "readonly", "readwrite"):
            if getattr(cfg, key) is None:
                r.problem(s, key, "is required with mode = symlink")
    elif mode == "flagfile":
        if cfg.flag is None:
            r.problem(s, "flag", "is required with mode = flagfile")
    else:
        r.problem(s, "mode", f"must be symlink or flagfile, got {mode!r}")
    return cfg


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _check_cross_references(r: _Reader, sources: list[SourceConfig],
                            targets: dict[str, TargetConfig]) -> None:
    names: dict[tuple[str, str], str] = {}
    for src in sources:
        section = f"source:{src.name}"
        for tname in src.targets:
            t = targets.get(tname)
            if t is None:
                r.problem(section, "targets", f"names no [target:{tname}] section")
                continue
            if t.local is not None and (_inside(t.local.path, src.path) or _inside(src.path, t.local.path)):
                r.problem(f"target:{tname}", "path",
                          f"{t.local.path} overlaps the source {src.path}: a mirror must live outside its source")
            key = (tname, src.dest)
            if key in names:
                r.problem(section, "dest", f"source {names[key]} already mirrors to target {tname} "
                          f"with dest {src.dest!r}; give each source its own dest")
            names[key] = src.name
    state_dir = None
    if r.parser.has_option("mirrord", "state_dir"):
        state_dir = r.path("mirrord", "state_dir")
    for src in sources:
        if state_dir is not None and _inside(state_dir, src.path):
            r.problem("mirrord", "state_dir", f"{state_dir} is inside the source {src.path}")


def _warn_if_secret_readable(r: _Reader) -> None:
    has_secret = any(
        r.parser.has_option(sec, key) and r.parser.get(sec, key).strip()
        for sec in r.parser.sections() for key in SECRET_KEYS
    ) or any("password=" in (r.parser.get(sec, k) or "")
             for sec in r.parser.sections() for k in ("database", "primary_database")
             if r.parser.has_option(sec, k))
    try:
        mode = r.file.stat().st_mode
    except OSError:
        return
    if has_secret and mode & 0o077:
        r.warnings.append(f"{r.file} holds a secret but is readable by others "
                          f"(mode {mode & 0o777:o}); chmod 600 it")


def load(path: str | os.PathLike[str]) -> Config:
    """Parse and validate a config file; raises ConfigError listing every problem."""
    p = Path(path).absolute()
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",), strict=True,
                                          default_section="__defaults_unused__")
    try:
        with open(p, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(p), "", "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(p), "", "", f"cannot read: {exc}")]) from None
    except configparser.Error as exc:
        raise ConfigError([ConfigProblem(str(p), "", "", f"not a valid INI file: {exc}".replace("\n", " "))]) from None
    return _build(_Reader(p, parser))


def _build(r: _Reader) -> Config:
    settings = _read_mirrord(r)
    sources: list[SourceConfig] = []
    targets: dict[str, TargetConfig] = {}
    for section in r.parser.sections():
        kind, _, name = section.partition(":")
        if kind in ("mirrord", "reconcile", "failover", "health") and not name:
            continue
        if kind == "target" and name:
            targets[name] = _read_target(r, section, name, settings.workers)
        elif kind == "source" and name:
            sources.append(_read_source(r, section, name))
        else:
            r.problem(section, "", "unknown section (known: [mirrord], [source:NAME], "
                      "[target:NAME], [reconcile], [failover], [health])")
    _check_cross_references(r, sources, targets)
    reconcile = _read_reconcile(r)
    failover = _read_failover(r, targets)
    health = _read_health(r)
    _warn_if_secret_readable(r)
    if r.problems:
        raise ConfigError(r.problems)
    return Config(path=r.file, mirrord=settings, sources=tuple(sources), targets=targets,
                  reconcile=reconcile, failover=failover, warnings=tuple(r.warnings),
                  health=health)


def find_config(explicit: str | None) -> Path:
    """-c, else $MIRRORD_CONFIG, else ./mirrord.ini, else /etc/mirrord/mirrord.ini."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("MIRRORD_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_PATHS:
        if Path(candidate).exists():
            return Path(candidate)
    return Path(DEFAULT_PATHS[-1])
