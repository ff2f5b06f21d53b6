"""`mirrord reconcile`: one full compare-and-repair pass, then a summary.

Argument parsing, target choice and the printed summary. The run itself is
mirrord.reconcile.command: for every target (or `--target NAME`) a reconcile
Session proposes repairs, recorded in the daemon's journal through the same
Pipeline the daemon uses; shipped by a Shipper of the command's own, or, when
a daemon runs, by the daemon. Deletes go out only after every repair of the
pass is done.

Exit codes: 0 every target is in sync (after the pass; with --dry-run: already,
nothing would change); 1 it is not (errors, refused or failed deletes, rows still
queued at the timeout, or with --dry-run anything to send or delete; or the run was
stopped by SIGTERM or SIGINT); 2 usage or configuration error.

SIGTERM (`systemctl stop`, the timer unit's TimeoutStartSec) and SIGINT (Ctrl-C) stop
the run cleanly: no new transfer starts, those under way finish and are recorded,
nothing is deleted, the summary is printed and stored, and a line on stderr says
which signal stopped it. Before, SIGTERM killed the process where it stood, saying
nothing, and Ctrl-C printed nothing either. A second signal stops at once.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from mirrord.cli.dispatch import target_name
from mirrord.cli.output import print_json
from mirrord.config import Config
from mirrord.logsetup import register_secret
from mirrord.reconcile.command import Command
from mirrord.reconcile.result import PassSummary

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parser(sub) -> None:
    p = sub.add_parser("reconcile", help="compare sources with targets and repair differences",
                       description="One full pass: list source and target side by side, repair "
                                   "what is missing, changed or extra, print a summary.")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--delete", dest="delete", action="store_true", default=None,
                       help="delete extra files on the target ([reconcile] delete = yes)")
    group.add_argument("--no-delete", dest="delete", action="store_false",
                       help="keep extra files on the target")
    p.add_argument("--checksum", action="store_true", default=None,
                   help="also compare content hashes of same-size, same-mtime files")
    p.add_argument("--target", metavar="NAME", type=target_name, help="only this target ([target:NAME])")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: Config) -> int:
    names = _selected_targets(args, cfg)
    if names is None:
        return EXIT_USAGE
    for t in cfg.targets.values():
        if t.s3 is not None:
            register_secret(t.s3.secret_access_key)
    delete = cfg.reconcile.delete if args.delete is None else args.delete
    checksum = cfg.reconcile.checksum if not args.checksum else True
    command = Command(cfg, dry_run=args.dry_run, delete=delete, checksum=checksum, quiet=args.json)
    try:
        with _stopped_by_signals(command):
            summaries = command.run(names, named=args.target is not None)
    finally:
        command.close()
    _print_summary(summaries, as_json=args.json, dry_run=args.dry_run, delete=delete)
    if command.stopped_by is not None:
        print(f"mirrord: reconcile stopped by {command.stopped_by}: transfers under way were "
              f"finished, nothing was deleted; run it again to finish", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK if all(s.in_sync for s in summaries) else EXIT_FAILURE


@contextlib.contextmanager
def _stopped_by_signals(command: Command):
    """SIGTERM and SIGINT call command.interrupt() (a flag; the run ends cleanly); a second
    one raises KeyboardInterrupt (stop now). The previous handlers come back afterwards.
    Only the main thread may set handlers (signal(2) in Python): elsewhere, none is set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame) -> None:
        if command.stop.is_set():
            raise KeyboardInterrupt
        command.interrupt(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _selected_targets(args: argparse.Namespace, cfg: Config) -> list[str] | None:
    used = [name for name in cfg.targets if cfg.sources_for(name)]
    if args.target is None:
        return used
    if args.target not in cfg.targets:
        known = ", ".join(cfg.targets) or "none"
        print(f"mirrord: config error: {cfg.path}: --target {args.target}: there is no "
              f"[target:{args.target}] section (targets: {known})", file=sys.stderr)
        return None
    if args.target not in used:
        print(f"mirrord: config error: {cfg.path}: --target {args.target}: no [source:*] lists "
              f"it in its targets key", file=sys.stderr)
        return None
    return [args.target]


def _print_summary(summaries: list[PassSummary], *, as_json: bool, dry_run: bool, delete: bool) -> None:
    if as_json:
        doc = {"dry_run": dry_run, "delete": delete, "in_sync": all(s.in_sync for s in summaries),
               "targets": {s.target: s.as_dict() for s in summaries}}
        print_json(doc, sort_keys=True)
        return
    head = ("target", "compared", "missing", "changed", "extra", "deleted",
            "bytes to send" if dry_run else "bytes shipped", "errors", "duration", "result")
    rows = [head]
    for s in summaries:
        # 'differs': a real run would bring it in sync; not when it would fail or refuse deletes
        differs = dry_run and not s.errors and not s.delete_refusal
        result = "in sync" if s.in_sync else ("differs" if differs else "NOT in sync")
        deleted = f"{s.deleted}" + (" (delete off)" if s.kept_extra else "")
        rows.append((s.target, f"{s.compared:,}", f"{s.missing:,}", f"{s.changed:,}",
                     f"{s.extra:,}", deleted, _size(s.bytes), f"{len(s.errors)}",
                     f"{s.duration:.1f}s", result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for s in summaries:
        for why in s.delete_refusal:
            print(f"{s.target}: {why}")
        for err in s.errors[:20]:
            print(f"{s.target}: error: {err}")
        if len(s.errors) > 20:
            print(f"{s.target}: ... and {len(s.errors) - 20} more errors")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{int(n):,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)
