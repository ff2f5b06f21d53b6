"""Reconcile: compare a source with a target and repair the difference.

engine.py    one pass: merge a source walk with a target listing -> repairs, extras
listings.py  the target listing as one source sees it, and the shipped rows, for a pass
deletes.py   which extras may be deleted, and when none may (the delete-safety rules)
window.py    bounded parallel lookups (content hashes, HEADs) for the engine
result.py    ReconcileResult (one source) and PassSummary (one target: the one shape
             printed, stored as `reconcile:{target}` and shown by `mirrord status`)
session.py   runs passes through the shipping Pipeline; deletes only after the repairs
schedule.py  when the daemon runs a pass (schedule, start, overflow), via a narrow Host
command.py   the `mirrord reconcile` run: lock, journal, one Pipeline per target
"""

from mirrord.reconcile.engine import reconcile_pass, reconcile_target
from mirrord.reconcile.result import PassSummary, ReconcileResult

__all__ = ["PassSummary", "ReconcileResult", "reconcile_pass", "reconcile_target"]
