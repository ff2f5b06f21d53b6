"""The failover's own paths against each other and against mirrord's own files.

A flip writes one path: `link` (mode symlink: replaced by a new symlink) or `flag`
(mode flagfile: replaced by the message, removed at failback). That path must not be a
file mirrord keeps for itself (the config file being read, anything in state_dir: the
journal, the locks, failover.log, the switch record) nor one of the app's configs the
other keys name: a breaker's `flag = mirrord.ini` overwrote the config (every later
command exited 2), `link = <state_dir>/failover-appconfig.json` lost the switch record.
And `readonly` must be a file of its own: naming the link itself (directly or through a
symlink) or the same file as `readwrite`, failover said "already points at" and exited
0 while the site stayed read-write. Each is one problem at load (exit 2) naming the keys.
Inside or around a target's root is hostplaces.check_own_files_outside_targets.
"""

from __future__ import annotations

import os
from pathlib import Path

from mirrord.config.hostplaces import _under, own_place, real
from mirrord.config.model import FailoverConfig
from mirrord.config.values import _Reader

_HOPS = 40   # as the kernel's MAXSYMLINKS


def reaches(path: Path, node: Path) -> bool:
    """Whether `path` is `node`'s place (own_place), or a chain of symlinks starting at
    `path` leads there (each hop's directory resolved): a `readonly` that names the
    app link itself, or a symlink to it. False when the chain ends elsewhere or loops."""
    goal = own_place(Path(node))
    cur = Path(os.path.abspath(path))
    for _ in range(_HOPS):
        here = own_place(cur)
        if here == goal:
            return True
        try:
            target = os.readlink(here)
        except OSError:   # not a symlink (or absent): the chain ends here
            return False
        cur = Path(os.path.abspath(here.parent / target))
    return False


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` are one file: the same path once resolved, or (both existing)
    the same device and inode (a hard link). Never raises."""
    if real(Path(a)) == real(Path(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _written(fo: FailoverConfig) -> tuple[str, Path] | None:
    """(key, path) of what a flip writes in this mode; None when unset (a problem already)."""
    key = "flag" if fo.mode == "flagfile" else "link" if fo.mode == "symlink" else ""
    path = getattr(fo, key, None) if key else None
    return (key, path) if path is not None else None


def check_switch_paths(r: _Reader, state_dir: Path, fo: FailoverConfig | None) -> None:
    """A problem at [failover] `link` or `flag` (the one the mode writes) when it is the
    config file, inside (or at) state_dir, or the file another of link, flag, readonly,
    readwrite names; in mode symlink, at `readonly` (or `readwrite`) when it names the
    link itself or a symlink to it, and at `readonly` when it is the same file as
    `readwrite`. Keys already refused are left out. Nothing is returned or raised."""
    if fo is None:
        return
    unusable = {(p.section, p.key) for p in r.problems}
    s = "failover"
    written = _written(fo)
    if written is not None and (s, written[0]) not in unusable:
        key, path = written
        place = own_place(path)
        sd = real(state_dir)
        sd_named = own_place(Path(state_dir))   # a state_dir that is a symlink: its name too
        if _under(place, sd) or _under(sd, place) or place == sd_named:
            r.problem(s, key, f"{path} is inside [mirrord] state_dir {state_dir}, among "
                      "mirrord's own files (journal.db, the locks, failover.log, the switch "
                      f"record): a flip would {_verb(key)} one; put it outside state_dir")
        elif place in (real(r.file), own_place(Path(r.file))) or (
                same_file(place, r.file) and not place.is_symlink()):
            # own_place: a config reached through a symlink named as `link` (a review: the
            # flip replaced the config's symlink, and every later command exited 2)
            r.problem(s, key, f"{path} is this config file {r.file}: a flip would "
                      f"{_verb(key)} it; name the application's own file")
        else:
            for other in ("link", "flag", "readonly", "readwrite"):
                there = getattr(fo, other)
                if other == key or there is None or (s, other) in unusable \
                        or key == "link" and other in ("readonly", "readwrite"):   # below
                    continue
                if place == own_place(there) or (other in ("readonly", "readwrite")
                                                 and reaches(there, path)):
                    r.problem(s, key, f"{path} is also [failover] {other} {there}: a "
                              f"flip would {_verb(key)} it; give each key its own file")
                    break
    if fo.mode == "symlink" and fo.link is not None:
        _check_configs(r, fo, unusable)


def _verb(key: str) -> str:
    return "overwrite or remove" if key == "flag" else "replace"


def _check_configs(r: _Reader, fo: FailoverConfig, unusable: set) -> None:
    s = "failover"
    assert fo.link is not None
    for key in ("readonly", "readwrite"):
        path = getattr(fo, key)
        if path is not None and (s, key) not in unusable and reaches(path, fo.link):
            r.problem(s, key, f"{path} is [failover] link {fo.link} itself, or a symlink to "
                      "it: the link would point at itself; name the application's "
                      f"{key} config file")
            unusable.add((s, key))
    ro, rw = fo.readonly, fo.readwrite
    if ro is None or rw is None or {(s, "readonly"), (s, "readwrite")} & unusable:
        return
    if ro == rw or same_file(ro, rw):
        r.problem(s, "readonly", f"{ro} is the same file as [failover] readwrite {rw}: a "
                  "failover would leave the site read-write; name the read-only config")
