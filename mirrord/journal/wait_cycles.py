"""Find and undo wait_for cycles in the journal: rows that wait, through any chain of
wait_for links, for themselves and so are never claimed.

Every place that links a row to another checks first that the other does not already
wait for it (EnqueueMixin._waits_on). One did not (a move's source end recorded over a
row the move waited for: mirrord.journal.enqueue._upsert), and `echo $i > a; mv a b;
mv b a` in a loop left two rows waiting for each other for good: the target wrong, status
`stalled`, a restart and a reconcile no help (a breaker, 2026-12-06). A journal written
by such a version still holds them, so a writer opening it undoes any it finds (Journal
__init__). Unlinking is safe: ops are state-based, so a row that runs before the one it
waited for does what the source needs then, at worst sending a file whole that a move
would have carried (ship_moves).
"""

from __future__ import annotations

import logging
import sqlite3

from mirrord.logsetup import kv

log = logging.getLogger("mirrord.journal")


def cycles(db: sqlite3.Connection) -> list[list[int]]:
    """Each wait_for cycle among the ops rows, as its row ids in link order (each cycle
    once). One read of the rows that wait (the ops_wait index)."""
    links = dict(db.execute("SELECT id, wait_for FROM ops WHERE wait_for IS NOT NULL"))
    done: set[int] = set()
    found: list[list[int]] = []
    for start in links:
        path: list[int] = []
        on_path: set[int] = set()
        cur: int | None = start
        while cur is not None and cur not in done and cur not in on_path:
            path.append(cur)
            on_path.add(cur)
            cur = links.get(cur)
        if cur is not None and cur in on_path:
            found.append(path[path.index(cur):])
        done.update(path)
    return found


def undo(db: sqlite3.Connection) -> int:
    """Clear one link of each cycle (the wait_for of its lowest id); how many cycles were
    undone, each logged at warning. Call inside a write transaction."""
    found = cycles(db)
    for cycle in found:
        db.execute("UPDATE ops SET wait_for = NULL WHERE id = ?", (min(cycle),))
        paths = [bytes(p).decode(errors="replace") for (p,) in db.execute(
            f"SELECT path FROM ops WHERE id IN ({','.join('?' * len(cycle))})", cycle)]
        log.warning(kv(msg="queued changes that waited for each other are free to run",
                       rows=len(cycle), paths=", ".join(sorted(paths)[:5])))
    return len(found)
