"""The journal's failures and their backoff: an op that failed waits RETRY_BASE seconds
doubling up to RETRY_MAX, with jitter (a permanent error at least PERMANENT_RETRY); a
source file still open for writing (busy) is a wait, not a failure; retry_now makes a
recovered target's backlog ready at once, retry_below the failed rows below a source
directory whose mode, owner or ACL changed. What a failed put stored is marked (ops.landed).
Split out of mirrord.journal.claims (ClaimAckMixin.ack calls _failed); mixed into Journal
through it.
"""

from __future__ import annotations

import random
import sqlite3

from mirrord.journal.holds import PARKED
from mirrord.journal.records import Outcome, _b, _error_at, _prefix_upper, _text

RETRY_BASE, RETRY_MAX, PERMANENT_RETRY = 0.5, 60.0, 600.0
# A row in flight's next_try when retry_below asked for it meanwhile: its failure, if it
# fails, is then retried at once instead of backing off (below every real time, so a row
# released with it is ready; claim() reads no claimed row's next_try)
RETRY_ASKED = -1.0


class RetryMixin:
    """Journal's failure and retry methods; Journal provides db."""

    db: sqlite3.Connection

    def _failed(self, out: Outcome, now: float) -> None:
        op = out.op
        attempts = op.attempts + 1
        if out.landed:   # the target holds a version no `shipped` row names (claims._landed_at)
            self.db.execute("UPDATE ops SET landed = 1 WHERE id = ?", (op.id,))
        if out.busy:
            self._busy(out, now, attempts)
            return
        row = self.db.execute("SELECT seq, next_try FROM ops WHERE id = ?", (op.id,)).fetchone()
        delay = min(RETRY_MAX, RETRY_BASE * (2 ** min(attempts - 1, 10)))
        delay = delay * (0.75 + random.random() / 2)
        if row is not None and row[1] == RETRY_ASKED:
            delay = 0.0   # retry_below ran while it was in flight: what failed may be fixed
        elif out.permanent:
            delay = max(delay, PERMANENT_RETRY)
            if op.kind == "put":
                # a rename's fallback delete of the old name waits for this put only so that
                # its keep finds the bytes at the new name (enqueue._file_fallback,
                # keeper.lives_on): a put that cannot succeed (a name the target cannot
                # hold) must not hold the old name on the target; it goes now, and keeps
                self.db.execute("UPDATE ops SET wait_for = NULL WHERE wait_for = ? AND "
                                "kind = 'delete' AND src = ?", (op.id, _b(op.path)))
        if row is not None and row[0] == op.seq:
            self.db.execute("UPDATE ops SET claimed = 0, attempts = ?, next_try = ?, last_error = ?, "
                            "busy = 0 WHERE id = ?", (attempts, now + delay, _text(out.error), op.id))
        elif row is not None:
            self.db.execute("UPDATE ops SET claimed = 0, last_error = ? WHERE id = ?",
                            (_text(out.error), op.id))
        self.db.execute(
            "INSERT INTO target_stats (target, failed, last_error, last_error_at) VALUES (?, 1, ?, ?) "
            "ON CONFLICT (target) DO UPDATE SET failed = failed + 1, last_error = excluded.last_error, "
            "last_error_at = excluded.last_error_at", (op.target, _error_at(op.path, out.error), now))

    def _busy(self, out: Outcome, now: float, attempts: int) -> None:
        """A file still open for writing: retried with the usual backoff, but counted as a
        wait (target_stats.busy), never as a failure, and not made the target's last error.
        A mkdir that found a file (Outcome.now_file) leaves its row, unchanged since its
        claim, the file's put, on its first try and ready at once."""
        op = out.op
        delay = min(RETRY_MAX, RETRY_BASE * (2 ** min(attempts - 1, 10)))
        self.db.execute("UPDATE ops SET claimed = 0, attempts = ?, next_try = ?, last_error = ?, "
                        "busy = 1 WHERE id = ? AND seq = ?",
                        (attempts, now + delay, _text(out.error), op.id, op.seq))
        if out.now_file:
            # errors.BecameAFile: the row, unchanged since (a change made it what it says),
            # is the file's put from here on, claimed under the put's rules
            # (its first try: not a failure, no backoff, not 'degraded' in the backlog)
            self.db.execute("UPDATE ops SET kind = 'put', is_dir = 0, busy = 0, attempts = 0, "
                            "last_error = NULL, next_try = 0 "
                            "WHERE id = ? AND seq = ? AND kind = 'mkdir' AND tree = 0",
                            (op.id, op.seq))
        self.db.execute("UPDATE ops SET claimed = 0 WHERE id = ? AND seq != ?", (op.id, op.seq))
        self.db.execute("INSERT INTO target_stats (target, busy) VALUES (?, 1) "
                        "ON CONFLICT (target) DO UPDATE SET busy = busy + 1", (op.target,))

    def retry_now(self, target: str) -> int:
        """Make every row of `target` that failed and waits out a backoff (up to RETRY_MAX
        seconds, PERMANENT_RETRY after a permanent error) ready at once; returns how many.
        For a target that is back: a local mirror made writable again answered EPERM or
        EACCES, permanent errors, and its backlog waited 10 minutes after it had recovered
        (tests/reliability/test_outage_exact.py). Rows in flight, rows waiting for a writer
        (busy) and the parked deletes of a source on hold are left as they are."""
        return self.db.execute(
            "UPDATE ops SET next_try = 0 WHERE target = ? AND claimed = 0 AND attempts > 0 "
            "AND busy = 0 AND next_try > 0 AND next_try < ?", (target, PARKED)).rowcount

    def retry_below(self, target: str, source: str, path: bytes) -> int:
        """Make the rows of `source` on `target` strictly below the directory `path` (b"":
        the source root) that failed and wait out a backoff ready at once; returns how
        many. Called for a directory's attribute change (Change.is_dir): a file below a
        directory the daemon's user could not search failed with EACCES, a permanent error
        (PERMANENT_RETRY, 10 minutes), and its own name has no event when the directory is
        made readable again; before, it waited out those 10 minutes while status said
        degraded (a review, helper-153). Rows waiting for a writer (busy) and the parked
        deletes of a source on hold are left as they are (as retry_now). A row in flight is
        marked instead (RETRY_ASKED): its worker may have met the locked directory before
        the chmod, and its failure, recorded after this, is then retried at once (a review,
        helper-154: it waited the 600 s); a success is done as usual."""
        where, args = ("", ()) if not path else (
            " AND path > ? AND path < ?", (path + b"/", _prefix_upper(path)))
        self.db.execute("UPDATE ops SET next_try = ? WHERE target = ? AND source = ?" + where +
                        " AND claimed != 0", (RETRY_ASKED, target, source, *args))
        return self.db.execute(
            "UPDATE ops SET next_try = 0 WHERE target = ? AND source = ?" + where + " AND "
            "claimed = 0 AND attempts > 0 AND busy = 0 AND next_try > 0 AND next_try < ?",
            (target, source, *args, PARKED)).rowcount
