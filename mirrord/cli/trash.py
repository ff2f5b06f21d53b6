"""`mirrord trash` (list what targets keep), and what it shares with `mirrord undelete`
(put kept versions back; mirrord.cli.undelete): choosing and opening the targets.

Both work on the targets directly (Target.trash_list / trash_restore / trash_fetch),
daemon running or not. `undelete` restores onto the targets; with --to-source it
writes into the primary's source tree instead, and the daemon mirrors that to every
target like any other change (one writer per target path, no race with the daemon;
a path refused at the source is left alone everywhere). Without --target they use every target with keep_deleted on,
and say which on stderr. PATH: a target-relative path or directory prefix, or an
absolute path inside a source tree (mapped through that source's `dest`).

Exit codes: 0 done; 1 something failed, was refused or matched nothing;
2 usage or configuration error (one line, never a traceback).
"""

from __future__ import annotations

import argparse
import sys

from mirrord import targets as target_registry
from mirrord.cli.dispatch import target_name
from mirrord.cli.output import print_data, print_json
from mirrord.config import Config
from mirrord.logsetup import register_secret
from mirrord.targets.base import Target
from mirrord.trash import listing
from mirrord.trash.model import WHY_TEXT

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parser(sub) -> None:
    p = sub.add_parser("trash", help="list the versions targets keep (keep_deleted)",
                       description="List kept versions: path, time of the change (UTC), size, "
                                   "why; newest first per path.")
    add_target_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("path", nargs="?", default="", metavar="PATH",
                   help="only at or below this path (target-relative, or inside a source tree)")
    p.set_defaults(func=run_trash)


def add_target_option(parser) -> None:
    """--target, the same for `trash` and `undelete`."""
    parser.add_argument("--target", metavar="NAME", type=target_name, help="only this target "
                        "(default: every target with keep_deleted on)")


def keeps(cfg: Config, name: str) -> bool:
    """Whether [target:NAME] has keep_deleted on (seconds > 0)."""
    return cfg.targets[name].keep_deleted > 0


def selected(cfg: Config, name: str | None) -> list[str]:
    """The targets a command works on; listing.UsageError naming the file and section."""
    if name is not None:
        if name not in cfg.targets:
            known = ", ".join(cfg.targets) or "none"
            raise listing.UsageError(f"{cfg.path}: --target {name}: there is no [target:{name}] "
                                     f"section (targets: {known})")
        return [name]
    # a target no source feeds (status: unused) is left out unless named: its root may hold
    # no mirror at all, and an undelete that succeeded elsewhere then exited 1 (a breaker).
    # A config with no source at all (the mirror host's: targets for failover) keeps them all
    names = [n for n in cfg.targets
             if keeps(cfg, n) and (cfg.sources_for(n) or not cfg.sources)]
    if not names:
        raise listing.UsageError(f"{cfg.path}: no [target:*] section that a source feeds has "
                                 f"keep_deleted on; name one with --target")
    return names


def announce(args: argparse.Namespace, names: list[str]) -> None:
    """Say which targets were chosen when the operator did not name one (stderr)."""
    if args.target is None:
        print(f"mirrord: targets that keep deleted files: {', '.join(names)}", file=sys.stderr)


def open_targets(cfg: Config, names: list[str], *, readonly: bool) -> dict[str, Target]:
    """The targets `names`, opened; `readonly` (Target.open) for the commands that only
    look (trash, undelete --dry-run, undelete --to-source): they write nothing there."""
    opened: dict[str, Target] = {}
    try:
        for name in names:
            tcfg = cfg.targets[name]
            if tcfg.s3 is not None:
                register_secret(tcfg.s3.secret_access_key)
            target = target_registry.create(tcfg)
            target.open(readonly=readonly)
            opened[name] = target
    except BaseException:
        close_targets(opened)
        raise
    return opened


def close_targets(opened: dict[str, Target]) -> None:
    for target in opened.values():
        target.close()


def usage(exc: listing.UsageError) -> int:
    print(f"mirrord: {exc}", file=sys.stderr)
    return EXIT_USAGE


def run_trash(args: argparse.Namespace, cfg: Config) -> int:
    try:
        names = selected(cfg, args.target)
        prefixes = {n: listing.target_path(cfg, n, args.path) for n in names}
    except listing.UsageError as exc:
        return usage(exc)
    announce(args, names)
    opened = open_targets(cfg, names, readonly=True)
    try:
        blind = empty_roots(opened)
        # a root with no mirror is named on stderr and left out: "0 kept versions" there
        # on stdout told a script the trash was empty (a new user's report)
        found = {n: (t.trash_mode(), listing.kept_under(t, [prefixes[n]]))
                 for n, t in opened.items() if n not in blind}
    finally:
        close_targets(opened)
    if args.json:
        print_json({**_trash_doc(found), "no_mirror": blind}, indent=2)
    elif found:
        print_data("\n".join(_trash_lines(found)))   # paths as they are named
    return EXIT_FAILURE if blind else EXIT_OK


def empty_roots(opened: dict[str, Target]) -> list[str]:
    """The targets whose root holds no mirror (Target.no_mirror), each named on
    stderr: an NFS mount missing on the mirror host shows an empty mount point, and
    "0 kept versions" there is no answer (the caller exits 1)."""
    names = [n for n, t in opened.items() if t.no_mirror()]
    for name in names:
        print(f"mirrord: target {name}: {opened[name].describe()}: {opened[name].no_mirror()}: "
              f"nothing kept can be seen there", file=sys.stderr)
    return names


def _trash_doc(found: dict) -> dict:
    targets = {n: {"trash_mode": mode, "count": len(kept), "bytes": sum(k.size for k in kept),
                   "entries": [listing.as_dict(k) for k in kept]}
               for n, (mode, kept) in found.items()}
    return {"targets": targets, "count": sum(t["count"] for t in targets.values()),
            "bytes": sum(t["bytes"] for t in targets.values())}


def _trash_lines(found: dict) -> list[str]:
    lines = []
    for name, (mode, kept) in found.items():
        total = sum(k.size for k in kept)
        lines.append(f"target {name} ({mode}): {len(kept)} kept versions, "
                     f"{listing.human_size(total)}")
        if kept:
            lines.append(f"  {'CHANGED (UTC)':<27} {'SIZE':>12}  {'WHY':<17}  PATH")
        for k in kept:
            lines.append(f"  {listing.iso(k.when):<27} {listing.human_size(k.size):>12}  "
                         f"{WHY_TEXT.get(k.why, k.why):<17}  {listing.shown_path(k.path)}")
    count = sum(len(kept) for _, kept in found.values())
    size = sum(k.size for _, kept in found.values() for k in kept)
    lines.append(f"total: {count} kept versions, {listing.human_size(size)}")
    return lines
