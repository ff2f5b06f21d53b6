"""Loading a file: every section read, cross-references checked, every problem
reported at once; and where the config file is found.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from mirrord.config.addresses import conninfo_password
from mirrord.config.failover import _read_failover, _read_health
from mirrord.config.model import Config, DEFAULT_PATHS, SECRET_KEYS, SourceConfig, TargetConfig
from mirrord.config.sections import _read_mirrord, _read_reconcile, _read_source, _read_target
from mirrord.config.values import _Reader
from mirrord.errors import ConfigError, ConfigProblem


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _check_cross_references(r: _Reader, sources: list[SourceConfig],
                            targets: dict[str, TargetConfig], state_dir: Path) -> None:
    """`state_dir`: [mirrord] state_dir as read (its default when not set)."""
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
    for src in sources:
        if r.parser.has_option("mirrord", "state_dir") and _inside(state_dir, src.path):
            r.problem("mirrord", "state_dir", f"{state_dir} is inside the source {src.path}")
    for t in targets.values():
        # mirrord's files there are not mirrored files: the daemon's start-up reconcile
        # deleted journal.db and the lock as "extra" while the daemon was using them
        if t.local is not None and _inside(state_dir, t.local.path):
            r.problem("mirrord", "state_dir", f"{state_dir} is inside [target:{t.name}] "
                      f"path {t.local.path}: reconcile would delete it as extra")


def _warn_if_secret_readable(r: _Reader) -> None:
    """A warning when the file holds a secret and others may read it. The conninfo's
    password is found by libpq's own parser: `password = x` (spaces) and the URI form
    `postgresql://user:x@host` were missed by a search for "password="."""
    has_secret = any(
        r.parser.has_option(sec, key) and r.parser.get(sec, key).strip()
        for sec in r.parser.sections() for key in SECRET_KEYS
    ) or any(conninfo_password(r.parser.get(sec, k) or "")
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
        # utf-8-sig: a byte order mark (Windows editors write one) is not part of the
        # first line; as utf-8 it made "[mirrord]" read as "\ufeff[mirrord]", refused as
        # "File contains no section headers"
        with open(p, encoding="utf-8-sig") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(p), "", "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(p), "", "", f"cannot read: {exc}")]) from None
    except configparser.Error as exc:
        raise ConfigError([ConfigProblem(str(p), "", "", f"not a valid INI file: {exc}".replace("\n", " "))]) from None
    if not parser.sections():   # empty, or comments only: a wrong file, never a setup
        raise ConfigError([ConfigProblem(str(p), "", "", "holds no section: nothing to mirror "
                                         "(expected [source:NAME] and [target:NAME])")])
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
    _check_cross_references(r, sources, targets, settings.state_dir)
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
