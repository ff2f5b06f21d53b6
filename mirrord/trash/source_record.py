"""Recording in the journal what `mirrord undelete --to-source` wrote while no daemon runs.

A restore writes the kept bytes with the kept size and mtime. The daemon's start-up
catch-up compares size, mtime and mode with what it shipped (mirrord.catchup), so a
version restored over a file of the same size and mtime (ransomware that keeps lengths
and puts mtimes back) looked shipped already: the targets kept the encrypted bytes and
the mirror stayed wrong until a `reconcile --checksum` (a trial, helper-160's rerun).
With no daemon running, each written path is recorded as a 'put' in the journal, which
the daemon ships at its next start, keeping what it replaces. A running daemon's watcher
sees the restore's rename itself.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from mirrord import locks
from mirrord.config import Config
from mirrord.errors import MirrordError
from mirrord.journal import Change, Journal, opening

log = logging.getLogger("mirrord.undelete")


def record_written(cfg: Config, written: list[tuple[str, str, int]]) -> str | None:
    """Record (source name, path below its root, size in bytes) of each file written into
    the source as a 'put' for every target of that source, when no daemon holds the state
    directory and a state database exists (none: the daemon's first start ships the whole
    tree). Returns None, or why nothing could be recorded (for the operator, who is told
    the run failed, exit 1: the files are in the source, and only `mirrord reconcile
    --checksum` ships them). Raises nothing."""
    if not written or locks.holder(cfg.mirrord.state_dir, locks.DAEMON) is not None:
        return None
    path = cfg.mirrord.journal_path
    try:
        if not opening.exists(path):
            return None
        routes = {s.name: s.targets for s in cfg.sources}
        journal = Journal(path, routes, check=False, reset_claims=False)
        try:
            now = time.time()
            journal.enqueue(Change(source, rel, "put", size=size, time=now)
                            for source, rel, size in written)
        finally:
            journal.close()
    except (MirrordError, OSError, sqlite3.Error) as exc:
        cause = getattr(exc, "strerror", None) or str(exc).split(";")[0]
        return (f"the files written could not be queued for the daemon's next start: the "
                f"state database {path} cannot be written ({cause}); the targets get them "
                f"only from `mirrord reconcile --checksum`, once it can run")
    return None
