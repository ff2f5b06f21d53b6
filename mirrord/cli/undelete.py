"""`mirrord undelete`: put kept versions back on the targets, or with --to-source into
the primary's source tree (the rules are mirrord.cli.trash's docstring: targets chosen
and opened there, exit codes the same).
"""

from __future__ import annotations

import argparse
import os
import sys

from mirrord.cli.output import print_data
from mirrord.cli.trash import (EXIT_FAILURE, EXIT_OK, add_target_option, announce,
                               close_targets, empty_roots, keeps, open_targets, selected,
                               usage)
from mirrord.config import Config
from mirrord.errors import MirrordError, PermanentError
from mirrord.logsetup import redact
from mirrord.targets.base import Target
from mirrord.targets.paths import check_relpath
from mirrord.trash import listing, restore, source_record, source_root
from mirrord.trash.model import WHY_TEXT, Kept


def add_parser(sub) -> None:
    u = sub.add_parser("undelete", help="put kept versions back on the target (and the source)",
                       description="For each file at or below PATH, put back the newest kept "
                                   "version whose change is at or before TIME (default now).")
    add_target_option(u)
    when = u.add_mutually_exclusive_group()
    when.add_argument("--at", metavar="TIME", help="newest version changed at or before TIME "
                      "(ISO 8601, e.g. 2026-11-29T12:00:00Z, or ago: 30m, 2h, 1d)")
    when.add_argument("--before", metavar="TIME", help="newest version changed before TIME")
    u.add_argument("--since", metavar="TIME", help="ignore versions changed before TIME (so a "
                   "directory brings back only what one mistake removed)")
    u.add_argument("--to-source", action="store_true", help="write it into the source tree "
                   "instead (the daemon then mirrors it to every target)")
    u.add_argument("--force", action="store_true", help="with --to-source: overwrite a newer "
                   "file in the source tree")
    u.add_argument("--newest", action="store_true", help="put the newest version back even "
                   "where the path already holds an earlier kept version again (after a first "
                   "run of the same undelete, that newest version is what it replaced)")
    u.add_argument("--dry-run", action="store_true", help="print what would happen, change nothing")
    u.add_argument("--all", action="store_true", help="everything the targets keep, instead "
                   "of PATH (an empty PATH or '.' is refused: `undelete \"$DIR\"` with DIR "
                   "unset brought back the whole trash)")
    u.add_argument("paths", nargs="*", metavar="PATH")
    u.set_defaults(func=run_undelete)


def run_undelete(args: argparse.Namespace, cfg: Config) -> int:
    try:
        if args.force and not args.to_source:
            raise listing.UsageError("--force only applies with --to-source")
        names = selected(cfg, args.target)
        bounds = _window(args)
        prefixes = _prefixes(cfg, names, args)
    except listing.UsageError as exc:
        return usage(exc)
    announce(args, names)
    # --to-source only reads the targets (trash_fetch): the daemon ships what it writes
    readonly = args.dry_run or args.to_source
    if not readonly:   # looked at first: a writable open makes .mirrord/ in an empty mount point
        looked = open_targets(cfg, names, readonly=True)
        try:
            if empty_roots(looked):
                return EXIT_FAILURE
        finally:
            close_targets(looked)
    opened = open_targets(cfg, names, readonly=readonly)
    queued = True   # what --to-source wrote is shipped (source_record)
    try:
        blind = empty_roots(opened) if readonly else []
        left: list[tuple[Kept, Kept]] = []   # a file and a newer directory at one name
        # every version, also those before --since (choose() applies the window): what
        # each path may hold again is asked of them all, so the same undelete run twice
        # does not put back what its first run replaced (restore.again; a retry of
        # `--since 2h` did: helper-162)
        versions = {n: listing.kept_under(t, prefixes[n])
                    for n, t in opened.items() if n not in blind}
        chosen = {n: listing.choose(found, **bounds, one_kind=not args.to_source, dropped=left)
                  for n, found in versions.items()}
        earlier = {n: listing.earlier(versions[n], chosen[n]) for n in chosen}
        if args.to_source:   # the daemon ships it on to every target, keeping what it replaces
            outcomes, queued = _restore_sources(cfg, opened, chosen, earlier, force=args.force,
                                                newest=args.newest, dry_run=args.dry_run,
                                                left=left)
        else:
            outcomes = _restore_targets(cfg, opened, chosen, earlier, newest=args.newest,
                                        dry_run=args.dry_run)
    finally:
        close_targets(opened)
    for old, newer in dict.fromkeys(left):    # each once, whichever targets keep them
        print_data(f"left in the trash: {listing.shown_path(old.path)} (changed "
                   f"{listing.iso(old.when)}): the newer change of {listing.iso(newer.when)} "
                   f"at {listing.shown_path(newer.path)} is put back there instead")
    for o in outcomes:
        print_data(_outcome_line(o))
    # only where a mirror was seen: beside "the mirror root is empty" it contradicted it
    unmatched = _unmatched(args.paths, prefixes, chosen) if chosen else []
    for path in unmatched:
        print(f"mirrord: nothing kept at or below {path!r} in the time asked "
              f"(targets: {', '.join(chosen)})", file=sys.stderr)
    if args.all and chosen and not any(chosen.values()):   # said, not a failure: nothing to do
        print(f"mirrord: nothing kept in the time asked (targets: {', '.join(chosen)})",
              file=sys.stderr)
    ok = not unmatched and not blind and all(o.ok for o in outcomes) and queued
    return EXIT_OK if ok else EXIT_FAILURE


def _window(args: argparse.Namespace) -> dict[str, float]:
    """--at / --before / --since as times (listing.parse_time); UsageError for a window no
    version can be in (`--since 1h --before 2h`): it read as "nothing kept", exit 1."""
    bounds = {key: listing.parse_time(getattr(args, key))
              for key in ("at", "before", "since") if getattr(args, key) is not None}
    since, end = bounds.get("since"), bounds.get("at", bounds.get("before"))
    if since is not None and end is not None and (
            since > end or (since == end and "before" in bounds)):
        flag = "--at" if "at" in bounds else "--before"
        raise listing.UsageError(f"--since {args.since} is not before {flag} "
                                 f"{getattr(args, flag[2:])}: no version can be in that window")
    return bounds


def _prefixes(cfg: Config, names: list[str], args: argparse.Namespace) -> dict[str, list[str]]:
    """Per target, the target path of each PATH; [""] (everything) for --all. UsageError
    for no PATH without --all, PATH with --all, or a PATH naming a whole target (an empty
    one, '.', './'): a shell variable left unset must not restore the whole trash."""
    if args.all:
        if args.paths:
            raise listing.UsageError("--all restores everything: give it no PATH")
        return {n: [""] for n in names}
    if not args.paths:
        raise listing.UsageError("undelete needs a PATH (or --all for everything kept)")
    out = {n: [listing.target_path(cfg, n, p) for p in args.paths] for n in names}
    for n in names:
        for arg, prefix in zip(args.paths, out[n]):
            if not prefix:
                raise listing.UsageError(f"PATH {arg!r} names everything [target:{n}] keeps; "
                                         "give a path inside it, or --all (with no PATH) "
                                         "to restore everything")
    return out


def _restore_targets(cfg: Config, opened: dict[str, Target], chosen: dict, earlier: dict,
                     *, newest: bool, dry_run: bool) -> list[restore.Outcome]:
    out = []
    for name, picked in chosen.items():   # no entry for a target where no mirror was seen
        target = opened[name]
        for path in sorted(picked):
            kept = picked[path]
            try:
                out.append(restore.restore_on_target(
                    target, kept, keep_first=keeps(cfg, name), dry_run=dry_run,
                    earlier=_kept_of(path, opened, chosen, earlier), newest=newest))
            except (MirrordError, OSError) as exc:
                out.append(restore.Outcome("failed", f"{name}:{path}", kept, str(exc)))
    return out


def _restore_sources(cfg: Config, opened: dict[str, Target], chosen: dict, earlier: dict,
                     *, force: bool, newest: bool, dry_run: bool,
                     left: list[tuple[Kept, Kept]]) -> tuple[list[restore.Outcome], bool]:
    """Each path once, from the target holding its newest chosen version; a file and
    versions below its name, the newest change wins over all targets (`left`: the others).
    `earlier` (target -> path -> versions): what each path may hold again, on any target.
    Returns the outcomes, and False when what was written could not be queued for a
    daemon not running (source_record: the targets would not get it)."""
    best: dict[str, tuple[str, Kept]] = {}
    for name, picked in chosen.items():   # no entry for a target where no mirror was seen
        for path, kept in picked.items():
            if path not in best or kept.when > best[path][1].when:
                best[path] = (name, kept)
    winners = listing.one_kind_per_name({p: k for p, (_n, k) in best.items()}, left)
    best = {p: best[p] for p in winners}
    out = []
    roots: dict[str, str | None] = {}   # source name -> why its root takes nothing (once each)
    written: list[tuple[str, str, int]] = []   # for a daemon not running (source_record)
    for path in sorted(best):
        name, kept = best[path]
        try:   # a name read from a target's trash never leads outside the source tree
            place = listing.source_place(cfg, name, check_relpath(path))
        except PermanentError as exc:
            out.append(restore.Outcome("refused", f"{name}:{path}", kept, str(exc)))
            continue
        if place is None:
            out.append(restore.Outcome("refused", f"{name}:{path}", kept,
                                       "no [source:*] of this target maps to this path"))
            continue
        if place[0] not in roots:
            roots[place[0]] = source_root.refusal(cfg, place[0], place[1], force=force)
        if roots[place[0]] is not None:
            out.append(restore.Outcome("refused", os.path.join(*place[1:]), kept, roots[place[0]]))
            continue
        try:
            out.append(restore.restore_to_source(opened[name], kept, *place[1:], force=force,
                                                 dry_run=dry_run, newest=newest,
                                                 earlier=_kept_of(path, opened, chosen, earlier)))
        except (MirrordError, OSError) as exc:
            out.append(restore.Outcome("failed", os.path.join(*place[1:]), kept, str(exc)))
            continue
        if out[-1].action == "written":
            written.append((place[0], place[2], kept.size))
    why = source_record.record_written(cfg, written)
    if why is not None:
        print(f"mirrord: {why}", file=sys.stderr)
    return out, why is None


def _kept_of(path: str, opened: dict[str, Target], chosen: dict,
             earlier: dict) -> list[tuple[Target, Kept]]:
    """Each version of `path` any target keeps, with that target (the path may hold any of
    them again, on any target: one whose older versions expired (a shorter keep_deleted)
    does not know them, helper-162; restore.again takes those older than the one
    restored)."""
    out = []
    for name, picked in chosen.items():
        out += [(opened[name], k) for k in earlier[name].get(path, ())]
        if path in picked:
            out.append((opened[name], picked[path]))
    return out


def _unmatched(args: list[str], prefixes: dict[str, list[str]], chosen: dict) -> list[str]:
    """The PATH arguments no chosen version lies at or below, on any target."""
    out = []
    for i, arg in enumerate(args):
        if not any(_under(path, prefixes[n][i]) for n in chosen for path in chosen[n]):
            out.append(arg)
    return out


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _outcome_line(o: restore.Outcome) -> str:
    k = o.kept
    what = (f"version of {listing.iso(k.when)} ({WHY_TEXT.get(k.why, k.why)}, "
            f"{listing.human_size(k.size)})")
    line = f"{o.action}: {listing.shown_path(o.where)} <- {what}"
    return f"{line}: {redact(o.detail)}" if o.detail else line   # a message: redacted
