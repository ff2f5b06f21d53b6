"""Typed settings: one frozen dataclass per INI section, and the whole Config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from mirrord.exclude import ExcludeMatcher, compile_excludes, restore_temp

DEFAULT_PATHS = ("./mirrord.ini", "/etc/mirrord/mirrord.ini")
TARGET_TYPES = ("local", "s3", "rsync")
KEEPING_TYPES = ("local", "s3", "rsync")   # target types that implement Target.keep (trash)
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
    watcher: str = "auto"  # auto | inotify | fanotify (mirrord.watch.select)
    # the live mass-change alarm (mirrord.alarm): more than alarm_deletes deletes or
    # overwrites within alarm_window seconds; pause_on_alarm holds deletes until resumed
    alarm_deletes: int = 1000
    alarm_window: float = 60.0
    pause_on_alarm: bool = False

    @cached_property  # frozen without slots: cached_property writes __dict__ directly
    def _excluder(self) -> ExcludeMatcher:
        return compile_excludes(self.exclude)

    @property
    def excludes_depend_on_path(self) -> bool:
        """Whether renaming a directory can change what is excluded below it (a pattern
        with a '/' inside: mirrord.exclude.ExcludeMatcher.path_dependent)."""
        return self._excluder.path_dependent

    def excluded(self, relpath: str, *, is_dir: bool = False) -> bool:
        """True when `relpath` (relative to `path`, '/'-separated) or one of its ancestor
        directories matches `exclude` (gitignore syntax: see mirrord/exclude.py).

        Pass `is_dir=True` when `relpath` is a directory, or a directory-only pattern
        (`thumb/`) cannot match the path itself. Raises PatternError for a pattern
        that load() would have refused (only when built by hand, as in tests). A restore's
        temp file (mirrord.exclude.restore_temp) is always excluded.
        """
        return restore_temp(relpath, is_dir) or self._excluder.excluded(relpath, is_dir=is_dir)


@dataclass(frozen=True)
class TargetConfig:
    """Common part of every target section; `options` holds the type's own typed settings."""

    name: str
    type: str
    workers: int
    local: LocalOptions | None = None
    s3: S3Options | None = None
    rsync: RsyncOptions | None = None
    # keep_deleted (mirrord.trash): seconds a deleted or overwritten file is kept in the
    # target's trash, 0 = off; the cap is keep_deleted_max bytes, or keep_deleted_max_percent
    # of the target's mirrored bytes when that is None
    keep_deleted: float = 0.0
    keep_deleted_max: int | None = None
    keep_deleted_max_percent: float | None = 20.0


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
    at_start: bool = True   # a pass after every start of the daemon
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
