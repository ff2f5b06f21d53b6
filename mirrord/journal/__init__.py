"""The durable change journal (SQLite, WAL) and the record of what was shipped.

One row per (target, source, path): several changes to a path coalesce into
the latest, so a path is never worked on by two workers at once and its
changes apply in order. Every op is state-based — the shipper looks at the
source when it runs — so coalescing never loses information.

An 'attr' change (only the mode or mtime changed: chmod, utime) never
weakens a pending op: arriving on a row that holds a put, move, delete or
mkdir it keeps that kind (which, state-based, ships the metadata too); a put,
delete or mkdir arriving on an 'attr' row replaces it. claim() hands an attr
op the path's shipped (size, mtime_ns, mode), so the shipper can send the
metadata alone. `shipped.mode` (schema 2) is NULL where not known.

A source file still open for writing (SourceBusy) is a wait, not a failure
(schema 3): its row is marked `busy` and counted in `target_stats.busy`, not
in `failed`; status shows such rows as waiting for writers, not as failing.

Moves keep their order with a `wait_for` link: after `mv A B` the row for A
(delete) waits for the row for B (move A->B), so a new A cannot be shipped and
then moved away. Directory ops (a directory moved, or deleted with its tree)
are barriers: rows below their paths enqueued after them wait for them; so is a
file's move over its old name (`mv f f.bak; mkdir f; echo > f/x`: f/x waits for it).
On a target with directories no row is handed out while a row at one of its path's
ancestors, or below it, is in flight (`rm d; mkdir d; echo > d/z`: barriers.InFlight).

A claimed row records its claimer, the process shipping it (schema 5, mirrord.claimer):
the daemon and `mirrord reconcile` may each have rows in flight, and only a gone
process's count as cut short. Only the daemon's main thread writes; readers (status, catch-up scans) open
their own read-only connections. A change is safe once `enqueue` returns.

records.py   Change, Op, Outcome, RowState, TargetBacklog; path bytes <-> str, ship_key
schema.py    the tables, connect(), the integrity check, migrate (user_version), transactions;
             each target's recorded bytes and high-water mark (schema 6, triggers)
migrations.py  the upgrades in place, one step per schema version
opening.py   opening it read-only (a read-only state dir too), and why it cannot be opened
barriers.py  pending directory moves / tree removals / file moves and the in-flight overlap rules
shipped.py   keeps the `shipped` table equal to what a target holds (on ack)
holds.py     sources whose deletes are held after a mass-change alarm (schema 4), the claim filter
read.py      read-only queries: read_state, read_backlog, iter_shipped, row states
held_files.py  what a target holds as the mass-change alarm counts it (puts in flight too)
removed_files.py  what a tree removal takes from a target beyond the deletes recorded (the alarm)
enqueue.py   the write side, in: enqueue, enqueue_move (coalescing, wait_for links)
wait_cycles.py  finds and undoes wait_for cycles a journal of an older version holds
claims.py    the write side, out: claim, ack
failures.py  failures and their backoff, retry_now
proposals.py  a catch-up's look at a file whose put is in flight, settled at that ack
writer.py    Journal: opens the database and combines the two sides
"""

from mirrord.journal.barriers import _Barriers  # noqa: F401 - tests import it from here
from mirrord.journal.failures import PERMANENT_RETRY, RETRY_BASE, RETRY_MAX
from mirrord.journal.read import iter_shipped, read_backlog, read_state, shipped_high_water
from mirrord.journal.records import Change, Op, Outcome, RowState, TargetBacklog, ship_key
from mirrord.journal.schema import SCHEMA_VERSION, connect
from mirrord.journal.writer import Journal

__all__ = ["Change", "Journal", "Op", "Outcome", "PERMANENT_RETRY", "RETRY_BASE", "RETRY_MAX",
           "RowState", "SCHEMA_VERSION", "TargetBacklog", "connect", "iter_shipped",
           "read_backlog", "read_state", "ship_key", "shipped_high_water"]
