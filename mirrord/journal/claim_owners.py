"""Who holds the journal's rows in flight: the claimers (processes) of claimed rows,
those no longer running, and the release of their claims after a crash or a kill
(mirrord.interrupted). Split out of mirrord.journal.claims; mixed into Journal
(mirrord.journal.writer).
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from mirrord import claimer as claimer_mod
from mirrord.journal.proposals import InFlightProposals


# A released row whose op may have stored a file at its path: every kind (a state-based
# worker sends what it finds: a delete that finds the file on a retry puts it, a tree
# removal or a directory's move that finds a file sends it), but, unchanged since their
# claim, a mkdir (not a tree's: one that finds a file sends nothing, errors.BecameAFile)
# and a file's delete on its first try (it finds the file back: it waits; both
# ship_rules.not_yet). A put of a new file cut short by `kill -9` left that file on the
# target while its row was only queued: a rewrite before the re-send counted nothing.
# Counted as landed, 3 mkdirs cut short and then `rm -rf` of their parent counted 4 files
# destroyed, not 1; a tree put (`rm -r d; echo > d`) not counted, an overwrite of that
# file counted nothing (the alarm's safe side is to count).
CUT_SHORT = ("NOT (claimed = seq AND tree = 0 AND (kind = 'mkdir' "
             "OR kind = 'delete' AND attempts = 0))")


class ClaimOwnersMixin:
    """Journal's claimer methods; Journal provides db, claimer and _proposals."""

    db: sqlite3.Connection
    claimer: str   # this process (mirrord.claimer.me())
    _proposals: InFlightProposals

    def claimers(self, target: str | None = None) -> set[str | None]:
        """The claimers (mirrord.claimer ids; None: a claim from before schema 5) of the
        rows in flight, of `target` only (an index range: cheap enough for every few
        seconds) or of every target (None: a scan of `ops`)."""
        if target is None:
            rows = self.db.execute("SELECT DISTINCT claimer FROM ops WHERE claimed != 0")
        else:
            rows = self.db.execute("SELECT DISTINCT claimer FROM ops WHERE target = ? AND "
                                   "claimed > 0", (target,))
        return {c for (c,) in rows}

    def gone_claimers(self, target: str | None = None) -> set[str | None]:
        """The claimers of rows in flight (of `target`, or all) that no longer run: whose
        rows a crash or a kill cut short (mirrord.interrupted)."""
        return {c for c in self.claimers(target) if not claimer_mod.alive(c)}

    def release_claims(self, target: str | None = None, *,
                       claimers: Iterable[str | None] | None = None) -> int:
        """Forget the in-flight marks left by processes that are gone (`claimers`; None:
        those gone now), of `target`'s rows only or of every row (None); a live
        process's rows (the daemon's, a running reconcile's, our own) stay in flight.
        An op among them may have stored a file at its path (its ack never came): the
        target is taken to hold an unknown version there until the path's next op done
        (ops.landed: the mass-change alarm counts a write there, the S3 claim rule takes
        the row as writing). Returns how many rows were released."""
        gone = self.gone_claimers(target) if claimers is None else set(claimers)
        named = [c for c in gone if c is not None]
        where = "claimer IS NULL" if None in gone else "0"
        if named:
            where += f" OR claimer IN ({','.join('?' * len(named))})"
        rows = f"WHERE claimed != 0 AND ({where})"
        if self.claimer in gone:   # only this process's rows have entries (proposals.py)
            self._proposals.clear()
        if target is not None:
            rows += " AND target = ?"
            named.append(target)
        # an op cut short may have stored a file at its path that no `shipped` row names
        # (CUT_SHORT): held there from here on (ops.landed, first_copies)
        return self.db.execute(f"UPDATE ops SET claimed = 0, claimer = NULL, landed = CASE "
                               f"WHEN {CUT_SHORT} THEN 1 ELSE landed END {rows}",
                               named).rowcount
