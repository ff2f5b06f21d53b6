"""Retention of a target's trash: which kept files to purge (a pure plan), and purging them.

Two rules, from `[target:NAME] keep_deleted` and `keep_deleted_max`:
- the window: a file kept longer than `keep_deleted` seconds ago (its stamp, the time of
  the change) is purged;
- the cap: while the trash holds more than the cap (bytes; a percentage is of the
  target's mirrored bytes, the sum of the journal's `shipped` sizes for the target, at
  the largest any run has seen: see percent_base), the oldest entries are purged too,
  with a warning: those were still in their window.

The daemon runs it per keeping target on its scanner thread (never the main loop) every
INTERVAL seconds and at start, and every reconcile pass (command or schedule) runs it after
its deletes. Purges go in batches of BATCH with a PAUSE between them, so a big purge does
not hog the target the shipper is writing to.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from mirrord import journal
from mirrord.journal import opening
from mirrord.config import Config
from mirrord.logsetup import kv, redact
from mirrord.targets.base import Target
from mirrord.trash.keeper import KeepPolicy
from mirrord.trash.model import Kept

log = logging.getLogger("mirrord.trash")

INTERVAL = 600.0   # seconds between the daemon's retention runs per target
BATCH = 500        # kept files purged per trash_purge call
PAUSE = 0.2        # seconds between batches: low priority next to the live stream


@dataclass
class Plan:
    """What retention purges: `purge` (expired first, then the oldest over the cap),
    `expired` / `over_cap` how many of them for each reason, and what is left: `files`,
    `bytes`, `oldest` (the oldest stamp's time, seconds; None when empty)."""

    purge: list[Kept]
    expired: int = 0
    over_cap: int = 0
    files: int = 0
    bytes: int = 0
    oldest: float | None = None


CAP_GRACE = 3600.0   # seconds: the cap never purges what changed this recently


def plan(kepts: Iterable[Kept], *, now: float, window: float, cap: int | None,
         grace: float = CAP_GRACE) -> Plan:
    """Which kept files to purge at `now` (seconds since the epoch): every one whose change
    is more than `window` seconds old, then, oldest first, until the rest is at most `cap`
    bytes (None: no cap). The cap never purges a change younger than `grace` seconds, nor
    any file of the newest change: what an `rm -rf` took a minute ago (thousands of
    per-file deletes, each its own stamp) is what the operator is about to undelete, and
    purging part of it would restore half a directory. The trash may then stay over its
    cap for up to `grace` (the warning says so). (Found by trying it: one big file
    deleted a second ago, alone over the cap, was purged at the next run.)"""
    entries = sorted(kepts, key=lambda k: (k.when, k.key))
    cutoff = now - window
    expired = [k for k in entries if k.when < cutoff]
    left = entries[len(expired):]   # sorted by time: the expired ones come first
    total = sum(k.size for k in left)
    over = 0
    if cap is not None and left:
        protect = min(now - grace, left[-1].when)   # younger, or the newest change: kept
        while over < len(left) and total > cap and left[over].when < protect:
            total -= left[over].size
            over += 1
    rest = left[over:]
    return Plan(purge=expired + left[:over], expired=len(expired), over_cap=over,
                files=len(rest), bytes=total, oldest=rest[0].when if rest else None)


@dataclass
class Summary:
    """One retention run on one target: what is kept after it (`files`, `bytes`, `oldest`
    seconds or None), what it purged (`purged` files, `purged_bytes`, of which `over_cap`
    were still in their window), `at` (seconds since the epoch) and `error` (None: done)."""

    target: str
    at: float
    files: int = 0
    bytes: int = 0
    oldest: float | None = None
    purged: int = 0
    purged_bytes: int = 0
    over_cap: int = 0
    base: int = 0   # the mirrored bytes a percentage cap was of (percent_base)
    error: str | None = None

    def to_state(self) -> dict:
        """JSON-ready, stored as `trash:{target}` in the state database: `error` with any
        credential in it masked (logsetup.redact), as status shows it."""
        doc = asdict(self)
        doc["error"] = redact(self.error) if self.error is not None else None
        return doc


def run(target: Target, policy: KeepPolicy, *, mirrored_bytes: int,
        clock: Callable[[], float] = time.time, stop: threading.Event | None = None,
        pause: Callable[[float], object] | None = None) -> Summary:
    """List `target`'s trash, purge what plan() says in batches of BATCH, pausing PAUSE
    seconds between them (`pause`, default stop.wait or time.sleep). `mirrored_bytes`:
    what the target mirrors (the base of a percentage cap). Stops early when `stop` is
    set (what was not purged yet waits for the next run). Never raises for target trouble:
    the error is in the summary (and logged)."""
    now = clock()
    summary = Summary(target.name, now, base=mirrored_bytes)
    wait = pause or (stop.wait if stop is not None else time.sleep)
    try:
        todo = plan(target.trash_list(), now=now, window=policy.window,
                    cap=policy.cap(mirrored_bytes))
        summary.files, summary.bytes, summary.oldest = todo.files, todo.bytes, todo.oldest
        summary.over_cap = todo.over_cap
        if todo.over_cap:
            log.warning(kv(msg="trash over its cap: purging entries still in their window",
                           target=target.name, purged=todo.over_cap, cap=policy.cap(mirrored_bytes),
                           window=policy.window))
        cap = policy.cap(mirrored_bytes)
        if cap is not None and todo.bytes > cap:
            log.warning(kv(msg="trash over its cap, kept anyway: all that is left changed "
                               "within the last hour or is the newest change",
                           target=target.name, bytes=todo.bytes, cap=cap))
        for i in range(0, len(todo.purge), BATCH):
            if i:
                wait(PAUSE)
            if stop is not None and stop.is_set():
                break
            batch = todo.purge[i:i + BATCH]
            target.trash_purge(batch)
            summary.purged += len(batch)
            summary.purged_bytes += sum(k.size for k in batch)
        left = todo.purge[summary.purged:]   # stopped early: still in the trash
        summary.files += len(left)
        summary.bytes += sum(k.size for k in left)
        if left:
            summary.oldest = min(k.when for k in left)
    except Exception as exc:  # noqa: BLE001 - retention must never stop the daemon or a pass
        summary.error = f"{type(exc).__name__}: {exc}"
        log.error(kv(msg="trash retention failed", target=target.name, error=summary.error))
        return summary
    if summary.purged:
        log.info(kv(msg="trash purged", target=target.name, purged=summary.purged,
                    bytes=summary.purged_bytes, kept=summary.files, kept_bytes=summary.bytes))
    return summary


def mirrored_bytes(db_path: Path, cfg: Config, target: str) -> int:
    """Bytes the target mirrors: the sizes in the journal's `shipped` table for it, over
    every source routed to it (read on its own read-only connection). 0 when there is no
    state database yet."""
    return percent_base(db_path, cfg, target, high_water=False)


def percent_base(db_path: Path, cfg: Config, target: str, *, high_water: bool = True) -> int:
    """What a percentage cap is of, in bytes: the target's mirrored bytes now, or
    (high_water) the most it has ever mirrored, whichever is larger. The high-water mark
    is kept by the journal at every acknowledgement (`shipped_bytes.high`, schema 6:
    mirrord.journal.schema), and a stored run's base (`trash:{target}`) is read beside
    it, for a journal that had runs before schema 6. Why the high-water mark: a mass
    delete on the primary (rm -rf, ransomware) shrinks the mirrored bytes at the very
    moment the trash holds what it deleted; a cap of 20% of what is left would purge the
    kept files the trash exists for, and a mark sampled only by retention runs missed a
    tree mirrored and removed between two of them. 0 without a state database;
    JournalUnusable for one truncated beside its log (opening.exists)."""
    if not opening.exists(db_path):
        return 0
    conn = journal.connect(db_path, readonly=True)
    try:
        now = sum(row[1] for src in cfg.sources_for(target)
                  for row in journal.iter_shipped(conn, target, src.name))
        if not high_water:
            return now
        stored = journal.read_state(conn, f"trash:{target}")
        high = journal.shipped_high_water(conn, target)
    finally:
        conn.close()
    return max(now, high, int((stored or {}).get("base") or 0))


def run_for(cfg: Config, target: Target, *, stop: threading.Event | None = None,
            clock: Callable[[], float] = time.time) -> Summary | None:
    """Retention for `target` under its config (None when keep_deleted is off there)."""
    policy = KeepPolicy.of(cfg.targets[target.name])
    if policy is None:
        return None
    try:
        base = percent_base(cfg.mirrord.journal_path, cfg, target.name) \
            if policy.cap_bytes is None else 0
    except Exception as exc:  # noqa: BLE001 - an unreadable journal: no percentage cap this run
        log.warning(kv(msg="mirrored size unknown; the percentage cap is skipped this run",
                       target=target.name, error=str(exc)))
        policy = KeepPolicy(policy.window, None, None)
        base = 0
    return run(target, policy, mirrored_bytes=base, clock=clock, stop=stop)
