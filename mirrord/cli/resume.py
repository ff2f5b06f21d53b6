"""`mirrord resume-deletes [--source NAME]`: let a source's held deletes go.

With `pause_on_alarm = yes` a source's mass-change alarm (mirrord.alarm) holds
its deletes in the state database (mirrord.journal.holds), and so does the
daemon's comparison at start or at a root's return when it finds more deletes
than [reconcile] max_delete allows (mirrord.daemon_roots: the daemon then
compares again without the cap once resumed). This command lifts
the hold - for one source, or every source - and prints what it released. It
works whether the daemon runs or not: the database is SQLite in WAL mode, so
this process writes its one short transaction between the daemon's, and the
daemon hands the released deletes to its workers at its next dispatch (and
logs one line once it notices, within a second).

Exit codes: 0 done (also when nothing was held); 2 `--source` names no
[source:NAME] section of the config; 1 the state database cannot be written.
"""

from __future__ import annotations

import argparse
import sys
import time

from mirrord.config import Config
from mirrord.errors import JournalError, JournalUnusable
from mirrord.journal import holds, opening, schema

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parser(sub) -> None:
    p = sub.add_parser("resume-deletes", help="ship a source's held deletes (after an alarm or a capped comparison)",
                       description="Lift the hold a mass-change alarm (pause_on_alarm = yes) or "
                                   "a comparison over [reconcile] max_delete put on a source's "
                                   "deletes; they are shipped at once.")
    p.add_argument("--source", metavar="NAME", help="only this source (default: every source)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: Config) -> int:
    names = [s.name for s in cfg.sources]
    if args.source is not None and args.source not in names:
        print(f"mirrord: resume-deletes: {cfg.path}: no [source:{args.source}] section "
              f"(sources: {', '.join(names) or 'none'})", file=sys.stderr)
        return EXIT_USAGE
    path = cfg.mirrord.journal_path
    try:
        if not opening.exists(path):
            print(f"no deletes were held (no state database yet at {path})")
            return EXIT_OK
        db = schema.connect(path)
    except JournalUnusable as exc:   # damaged, or cannot be opened for writing (a read-only dir)
        print(f"mirrord: resume-deletes: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        schema.migrate(db, path)
        lifted = holds.release(db, args.source)
    except JournalUnusable as exc:
        print(f"mirrord: resume-deletes: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except JournalError as exc:
        print(f"mirrord: resume-deletes: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - sqlite3.Error: locked past busy_timeout, disk full
        print(f"mirrord: resume-deletes: cannot write the state database {path}: {exc}",
              file=sys.stderr)
        return EXIT_FAILURE
    finally:
        db.close()
    if not lifted:
        which = f"source {args.source}" if args.source else "any source"
        print(f"no deletes were held for {which}")
    for h in lifted:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(h.since))
        where = f" on {h.targets} targets" if h.targets > 1 else ""   # paths, not rows
        print(f"deletes resumed for source {h.source}: {h.waiting} held deletes{where} go out now "
              f"(held since {since}: {h.reason})")
    return EXIT_OK
