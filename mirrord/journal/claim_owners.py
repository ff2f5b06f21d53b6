"""Who holds the journal's rows in flight: the claimers (processes) of claimed rows,
those no longer running, and the release of their claims after a crash or a kill
(mirrord.interrupted). Split out of mirrord.journal.claims; mixed into Journal
(mirrord.journal.writer).
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from mirrord import claimer as claimer_mod
from mirrord.journal.first_copies import FirstCopies
from mirrord.journal.proposals import InFlightProposals
from mirrord.journal.records import _s


class ClaimOwnersMixin:
    """Journal's claimer methods; Journal provides db, claimer, _proposals and first_copies."""

    db: sqlite3.Connection
    first_copies: FirstCopies
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
        A file's put among them may have stored the file (its ack never came): the
        mass-change alarm takes an unknown version as held there until the path's next
        ack (first_copies.cut_short). Returns how many rows were released."""
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
        # a put cut short may have stored its file: held from here on (first_copies)
        for cut in self.db.execute(f"SELECT target, source, path FROM ops {rows} "
                                   f"AND kind = 'put' AND is_dir = 0", named).fetchall():
            self.first_copies.cut_short(cut[0], cut[1], _s(cut[2]))
        return self.db.execute(f"UPDATE ops SET claimed = 0, claimer = NULL {rows}",
                               named).rowcount
