"""Reading the [mirrord], [source:NAME], [target:NAME] and [reconcile] sections.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from mirrord.config import worker_defaults
from mirrord.config.addresses import parse_http_url, parse_listen
from mirrord.config.keypaths import parse_s3_prefix, parse_sub_path
from mirrord.config.model import (
    KEEPING_TYPES, LOG_LEVELS, LocalOptions, MirrordSettings, ReconcileConfig, RsyncOptions,
    S3Options, SourceConfig, TARGET_TYPES, TargetConfig,
)
from mirrord.config.hostport import parse_port
from mirrord.config.values import (
    _Reader, parse_bool, parse_count, parse_duration, parse_every,
    parse_list, parse_percent, parse_positive_int, parse_size, parse_timeout,
)
from mirrord.config.host import read_ssh_command, read_state_dir
from mirrord.config.keyfiles import read_ca_bundle, read_ssh_files
from mirrord.config.names import read_hostname
from mirrord.exclude import PatternError, check_pattern

_MIRRORD_KEYS = {"state_dir", "workers", "heartbeat_interval", "log_level", "log_format",
                 "metrics_listen", "hostname"}
_SOURCE_KEYS = {"path", "targets", "exclude", "dest", "watcher", "alarm_deletes", "alarm_window",
                "pause_on_alarm"}
WATCHERS = ("auto", "inotify", "fanotify")
_COMMON_TARGET_KEYS = {"type", "workers", "keep_deleted", "keep_deleted_max"}
_TARGET_KEYS = {
    "local": {"path", "fsync"},
    "s3": {"bucket", "prefix", "endpoint_url", "region", "access_key_id", "secret_access_key",
           "addressing_style", "acl", "storage_class", "multipart_threshold",
           "multipart_chunksize", "ca_bundle"},
    "rsync": {"host", "port", "user", "path", "ssh_key", "known_hosts",
              "strict_host_key_checking", "rsync_path", "ssh_command", "connect_timeout",
              "batch_size"},
}
_RECONCILE_KEYS = {"every", "at_start", "delete", "max_delete", "checksum"}
MIN_HEARTBEAT_INTERVAL = 0.1   # seconds
MIN_RECONCILE_EVERY = 1.0      # seconds, when not off
# The canned ACLs of the S3 API ("Canned ACL" in the Amazon S3 user guide): anything else
# is a 400 InvalidArgument on every put, so a typo left every file unshipped.
CANNED_ACLS = ("private", "public-read", "public-read-write", "aws-exec-read",
               "authenticated-read", "bucket-owner-read", "bucket-owner-full-control",
               "log-delivery-write")


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
    if interval < MIN_HEARTBEAT_INTERVAL:
        # each beat is a write to every target (an S3 PUT): `0.5ms` was taken, and ran
        r.problem(s, "heartbeat_interval", f"must be at least {MIN_HEARTBEAT_INTERVAL * 1000:g}ms "
                  "(each heartbeat is a write to every target)")
    return MirrordSettings(
        state_dir=read_state_dir(r),
        workers=r.get(s, "workers", parse_positive_int, 8),
        heartbeat_interval=interval,
        log_level=level,
        log_format=fmt,
        metrics_listen=r.get(s, "metrics_listen", parse_listen, None),
        hostname=read_hostname(r),
    )


def _normalise_dest(r: _Reader, section: str, text: str) -> str:
    """`dest` without the '/' at its ends -> the sub-path; a problem for what
    parse_sub_path refuses (with name_max: it is a directory on local and rsync targets)."""
    dest = text.strip().strip("/")
    try:
        if dest:
            parse_sub_path(dest, name_max=True)
    except ValueError as exc:
        r.problem(section, "dest", f"must be a plain relative sub-path: {exc}")
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
    for tname in sorted({t for t in targets if targets.count(t) > 1}):
        # else the cross-reference check saw the source collide with itself and blamed `dest`
        r.problem(section, "targets", f"names target {tname} more than once")
    targets = tuple(dict.fromkeys(targets))
    return SourceConfig(
        name=name,
        # as written (absolute), not resolved: a root that is a symlink (`uploads ->
        # releases/N`, switched by a deploy) is followed at each use, and a switch of it
        # is seen (mirrord.watch.rootcheck); resolved at load, the old release stayed the
        # root for good and the mirror drifted while status said in_sync
        path=r.path(section, "path", required=True, as_written=True) or Path("/nonexistent"),
        targets=targets,
        exclude=_read_exclude(r, section),
        dest=_normalise_dest(r, section, r.raw(section, "dest", "") or ""),
        watcher=_read_watcher(r, section),
        **_read_alarm(r, section),
    )


def _read_alarm(r: _Reader, section: str) -> dict:
    """alarm_deletes (a count, at least 1), alarm_window (a duration > 0), pause_on_alarm."""
    window = r.get(section, "alarm_window", parse_duration, 60.0)
    if window <= 0:
        r.problem(section, "alarm_window", "must be greater than zero (e.g. 1m)")
        window = 60.0
    return {"alarm_deletes": r.get(section, "alarm_deletes", parse_positive_int, 1000),
            "alarm_window": window,
            "pause_on_alarm": r.get(section, "pause_on_alarm", parse_bool, False)}


def _read_watcher(r: _Reader, section: str) -> str:
    value = r.get(section, "watcher", str, "auto").lower()
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
    prefix = r.get(section, "prefix", parse_s3_prefix, "")
    style = r.get(section, "addressing_style", str.lower, "auto")
    if style not in ("auto", "path", "virtual"):
        r.problem(section, "addressing_style", f"must be auto, path or virtual, got {style!r}")
    acl = r.raw(section, "acl", "") or ""
    if acl and acl not in CANNED_ACLS:
        r.problem(section, "acl", f"not a canned ACL: {acl!r} (one of {', '.join(CANNED_ACLS)})")
    access = r.raw(section, "access_key_id", "") or ""
    secret = r.raw(section, "secret_access_key", "") or ""
    if bool(access) != bool(secret):
        r.problem(section, "secret_access_key" if access else "access_key_id",
                  "access_key_id and secret_access_key go together")
    chunk = r.get(section, "multipart_chunksize", parse_size, 16 << 20)
    if not 5 << 20 <= chunk <= 5 << 30:
        r.problem(section, "multipart_chunksize", "must be 5MiB to 5GiB (S3's part size limits)")
    return S3Options(
        bucket=bucket, prefix=prefix,
        endpoint_url=r.get(section, "endpoint_url", parse_http_url, ""),
        region=r.get(section, "region", str, "us-east-1"),
        access_key_id=access, secret_access_key=secret, addressing_style=style,
        acl=acl,
        storage_class=r.raw(section, "storage_class", "") or "",
        multipart_threshold=r.get(section, "multipart_threshold", parse_size, 64 << 20),
        multipart_chunksize=chunk,
        ca_bundle=read_ca_bundle(r, section),
    )


def _read_rsync(r: _Reader, section: str) -> RsyncOptions:
    host = r.required(section, "host")
    if "@" in host:   # `bob:pw@mirror`: not repeated, it may hold a password
        r.problem(section, "host", "holds '@' (the value is not shown: it may hold a "
                  "password); write the user name in `user` and only the host name here")
    elif host.startswith("-"):
        r.problem(section, "host", "must not start with '-'")
    elif any(c.isspace() or not c.isprintable() for c in host):   # ssh would take the rest
        r.problem(section, "host", "not a host name: it holds a space or a control "
                  "character (the value is not shown: it may hold ssh options or a password)")
    user = r.raw(section, "user", "") or ""
    if "@" in user:   # `bob:pw@`: not repeated, it may hold a password
        r.problem(section, "user", "not a valid user name: it holds '@' (the value is not "
                  "shown: it may hold a password); write the user name only")
    elif user.startswith("-"):
        r.problem(section, "user", f"not a valid user name: {user!r}")
    path = r.required(section, "path")
    if path and not path.startswith("/"):
        r.problem(section, "path", "must be an absolute path on the mirror host")
    elif path.strip("/"):
        try:   # '//' is harmless in a remote path; '..', '.' and control characters are not
            parse_sub_path("/".join(p for p in path.split("/") if p))
        except ValueError as exc:
            r.problem(section, "path", f"not a usable path on the mirror host: {exc}")
    strict = r.get(section, "strict_host_key_checking", str.lower, "accept-new")
    if strict not in ("yes", "no", "accept-new"):
        r.problem(section, "strict_host_key_checking", "must be yes, no or accept-new")
    port = r.get(section, "port", parse_port, 22)
    ssh_key, known_hosts = read_ssh_files(r, section, strict)
    return RsyncOptions(
        host=host, path=path.rstrip("/") or "/", port=port, user=user,
        ssh_key=ssh_key, known_hosts=known_hosts,
        strict_host_key_checking=strict,
        rsync_path=r.get(section, "rsync_path", str, "rsync"),
        ssh_command=read_ssh_command(r, section),
        connect_timeout=r.get(section, "connect_timeout", parse_timeout, 10.0),
        batch_size=r.get(section, "batch_size", parse_positive_int, 5000),
    )


def _read_target(r: _Reader, section: str, name: str, default_workers: int) -> TargetConfig:
    """[target:NAME] `section`. `default_workers`: [mirrord] workers (the target type's
    own default when that is not written: config.worker_defaults)."""
    ttype = (r.raw(section, "type", "") or "").lower()
    if not ttype:
        r.problem(section, "type", f"is required: one of {', '.join(TARGET_TYPES)}")
    if ttype not in TARGET_TYPES:
        if ttype:
            r.problem(section, "type", f"must be one of {', '.join(TARGET_TYPES)}, got {ttype!r}")
        r.check_keys(section, _COMMON_TARGET_KEYS | set().union(*_TARGET_KEYS.values()))
        return TargetConfig(name=name, type=ttype or "?", workers=default_workers)
    r.check_keys(section, _COMMON_TARGET_KEYS | _TARGET_KEYS[ttype])
    opts = {"local": _read_local, "s3": _read_s3, "rsync": _read_rsync}[ttype](r, section)
    default_workers = worker_defaults.default_workers(
        ttype, opts, default_workers, mirrord_wrote=r.raw("mirrord", "workers") is not None)
    workers = r.get(section, "workers", parse_positive_int, default_workers)
    window, cap, percent = _read_keep(r, section, ttype)
    return TargetConfig(name=name, type=ttype, workers=workers, **{ttype: opts},
                        keep_deleted=window, keep_deleted_max=cap,
                        keep_deleted_max_percent=percent)


def _read_keep(r: _Reader, section: str, ttype: str) -> tuple[float, int | None, float | None]:
    """keep_deleted (a duration; 0, off or no: off, the default) and keep_deleted_max (a
    percentage of the target's mirrored bytes, default 20%, or a size like 50G) ->
    (window seconds, cap bytes or None, cap percent or None)."""
    window = r.get(section, "keep_deleted", parse_every, 0.0)
    if window and ttype not in KEEPING_TYPES:
        r.problem(section, "keep_deleted", f"a {ttype} target cannot keep deleted files")
    text = r.get(section, "keep_deleted_max", str, "20%")
    if not text:
        return window, None, 20.0
    try:
        if text.endswith("%"):
            return window, None, parse_percent(text, zero_ok=False)
        cap = parse_size(text)
        if cap <= 0:
            raise ValueError("must be greater than zero")
        return window, cap, None
    except ValueError as exc:
        r.problem(section, "keep_deleted_max", f"{exc} (a percentage like 20% or a size like 50G)")
        return window, None, 20.0


def _read_reconcile(r: _Reader) -> ReconcileConfig:
    s = "reconcile"
    if not r.parser.has_section(s):
        return ReconcileConfig()
    r.check_keys(s, _RECONCILE_KEYS)
    max_delete, percent = 1000, None
    text = r.get(s, "max_delete", str, "1000")
    if text:
        try:
            if text.endswith("%"):
                percent = parse_percent(text, zero_ok=True)
                max_delete = 0
            else:
                max_delete = parse_count(text)
        except ValueError as exc:
            r.problem(s, "max_delete", f"{exc} (a count like 1000 or a percentage like 5%)")
    every = r.get(s, "every", parse_every, 0.0)
    if 0 < every < MIN_RECONCILE_EVERY:
        # a pass lists the source and every target whole: `every = 1ms` (for 1m?) was taken
        r.problem(s, "every", f"must be at least {MIN_RECONCILE_EVERY:g}s, or 0 / off "
                  "(each pass lists the source and every target whole)")
    return ReconcileConfig(
        every=every,
        at_start=r.get(s, "at_start", parse_bool, True),
        delete=r.get(s, "delete", parse_bool, True),
        max_delete=max_delete,
        max_delete_percent=percent,
        checksum=r.get(s, "checksum", parse_bool, False),
    )
