"""What a reconcile pass found: per source (ReconcileResult, from the engine; log_pass) and per
target (PassSummary: the one shape printed by `mirrord reconcile --json`, stored in
the state database as `reconcile:{target}` and shown by `mirrord status`, whichever
ran the pass: the command or the daemon's schedule)."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

from mirrord.logsetup import kv

COUNTS = ("compared", "missing", "changed", "extra", "deleted", "refused_deletes",
          "kept_extra", "bytes")
STATE_KEY = "reconcile:{target}"
KEEP_ERRORS = 20   # errors kept in the state database (the rest are counted in the log)

log = logging.getLogger("mirrord.reconcile")   # the engine's: a pass logs as it did


@dataclass
class ReconcileResult:
    """What one pass of one source against one target found and proposed.

    Counts are entries: files, plus directories on targets that keep them;
    `compared` counts source files. `deleted` and `bytes` are what the pass
    *proposed*; the session knows when they are done.
    """

    target: str
    source: str
    started_at: float = 0.0
    duration: float = 0.0
    compared: int = 0
    target_entries: int = 0
    missing: int = 0
    changed: int = 0
    extra: int = 0
    deleted: int = 0
    kept_extra: int = 0          # extras left alone because delete is off
    refused_deletes: int = 0     # extras not deleted because the pass was not trustworthy
    reappeared: int = 0          # extras that exist at the source again by delete time
    checksummed: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    delete_refusal: str | None = None
    refused: list[str] = field(default_factory=list)   # the extras a refusal keeps ('dir/')
    complete: bool = False       # both listings were merged to the end

    @property
    def clean(self) -> bool:
        """True when everything found can be repaired: no error, no refused delete."""
        return self.complete and not self.errors and not self.refused_deletes

    def to_state(self) -> dict:
        """As JSON-ready data (unreadable directories and errors: the first KEEP_ERRORS)."""
        doc = dataclasses.asdict(self)
        doc["unreadable"] = [list(u) for u in self.unreadable[:KEEP_ERRORS]]
        doc["errors"] = self.errors[:KEEP_ERRORS]
        doc["refused"] = self.refused[:KEEP_ERRORS]
        return doc


@dataclass
class PassSummary:
    """One target's pass over all its sources.

    In a real pass `deleted` and `bytes` count what was done (rows acked); in a dry
    run, what would be. `in_sync` means the target holds what the source holds
    (extras kept because delete is off aside, counted in `kept_extra`): after a real
    pass, every repair and delete succeeded and none was refused; in a dry run,
    nothing differs. The exit code of `mirrord reconcile` says the same."""

    target: str
    reason: str = "command"
    dry_run: bool = False
    started_at: float = field(default_factory=time.time)   # wall clock, seconds
    finished_at: float = 0.0
    duration: float = 0.0                                  # seconds
    compared: int = 0
    missing: int = 0
    changed: int = 0
    extra: int = 0
    deleted: int = 0
    refused_deletes: int = 0
    kept_extra: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    delete_refusal: list[str] = field(default_factory=list)
    would_send: list[str] = field(default_factory=list)
    would_delete: list[str] = field(default_factory=list)
    would_refuse: list[str] = field(default_factory=list)   # deletes a real run would refuse

    @property
    def in_sync(self) -> bool:
        if self.errors or self.refused_deletes or self.delete_refusal:
            return False
        return not self.dry_run or not (self.missing or self.changed or self.deleted)

    def add(self, r: ReconcileResult) -> None:
        """Fold in one source's findings (not `deleted` / `bytes`: the session counts
        those from what was shipped, or, in a dry run, from what was proposed)."""
        for name in ("compared", "missing", "changed", "extra", "refused_deletes", "kept_extra"):
            setattr(self, name, getattr(self, name) + getattr(r, name))
        self.errors.extend(r.errors)
        if r.delete_refusal:
            self.delete_refusal.append(r.delete_refusal)

    def refuse(self, count: int, why: str) -> None:
        self.refused_deletes += count
        self.delete_refusal.append(why)

    def finish(self, duration: float) -> None:
        self.duration = duration
        self.finished_at = time.time()

    def as_dict(self) -> dict:
        """The JSON object of `mirrord reconcile --json` (plan lists only in a dry run)."""
        doc = dataclasses.asdict(self)
        doc["in_sync"] = self.in_sync
        doc["duration"] = round(self.duration, 3)
        doc["at"] = doc.pop("started_at")
        if not self.dry_run:
            doc.pop("would_send")
            doc.pop("would_delete")
            doc.pop("would_refuse")
        return doc

    def to_state(self) -> dict:
        """The `reconcile:{target}` state document: as_dict() with at most KEEP_ERRORS errors,
        and `error_count`, how many there were (status says it)."""
        doc = self.as_dict()
        doc["errors"] = self.errors[:KEEP_ERRORS]
        doc["error_count"] = len(self.errors)
        return doc

    @property
    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in COUNTS}


def state_counts(doc: dict) -> dict[str, int]:
    """The counts of a stored `reconcile:{target}` document, whichever version wrote it
    (before this shape the daemon nested them under "counts")."""
    nested = doc.get("counts") or {}
    return {k: doc.get(k, nested.get(k)) for k in COUNTS if k in doc or k in nested}


def log_pass(r: ReconcileResult) -> None:
    """Log one pass's counts (INFO), its delete refusal (ERROR) and its first five errors
    (WARNING), as key=value lines (mirrord.logsetup.kv)."""
    log.info(kv(msg="reconcile pass", source=r.source, target=r.target, compared=r.compared,
                missing=r.missing, changed=r.changed, extra=r.extra, deletes=r.deleted,
                refused=r.refused_deletes, seconds=round(r.duration, 3)))
    if r.delete_refusal:
        log.error(kv(msg="reconcile deletes refused", source=r.source, target=r.target,
                     why=r.delete_refusal))
    for err in r.errors[:5]:
        log.warning(kv(msg="reconcile error", source=r.source, target=r.target, error=err))
