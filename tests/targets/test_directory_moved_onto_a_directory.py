"""A directory's move kept as a move onto a directory the target holds (the first half of
`mv --exchange D E`, as fanotify reads it), on every target type with the real journal,
shipper and catch-up: afterwards the target holds exactly what the source does.

Found by a breaker (fanotify, two directories exchanged three times, S3): the bucket kept
the old E/e.jpg for good, status in_sync. An S3 move copies the old keys and deletes
them, and leaves what stood below the destination (Features.move_merges); the record
forgot it (journal.shipped), so the check that follows a directory's move (Outcome.check:
a subtree catch-up of the new name) saw nothing to remove.
"""

from __future__ import annotations

from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
from mirrord.journal import Journal
from mirrord.shipper import Shipper
from tests.e2e.test_exchange_in_flight import exchange

S = "up"


def ship(journal: Journal, shipper: Shipper, target, source: SourceConfig, db) -> None:
    """Run every ready row, then what the outcomes ask for (a check, a rescan), to the end."""
    for _ in range(20):
        ops = journal.claim(target.name, 1000, now=1e12)
        if not ops:
            return
        outcomes = shipper.run_ops(target, ops)
        journal.ack(outcomes)
        for out in outcomes:
            if out.check or out.rescan:
                changes = []
                catch_up(db, source, [target.name], changes.extend, subtree=out.op.path)
                journal.enqueue(changes)
    raise AssertionError("the journal did not drain")


def listing(target) -> dict[str, bytes]:
    return {e.path: target.read(e.path) for e in target.list("") if not e.is_dir}


def test_a_directory_moved_onto_a_directory_leaves_nothing_of_it(target, tmp_path):
    root = tmp_path / "src"
    for rel, data in [("D/a.jpg", b"a"), ("D/s/in.jpg", b"in"), ("E/e.jpg", b"e")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    db = tmp_path / "state" / "journal.db"
    source = SourceConfig(S, root, (target.name,))
    journal = Journal(db, {S: (target.name,)})
    shipper = Shipper({target.name: target}, [source], {target.name: 1})
    try:
        first = []
        catch_up(db, source, [target.name], first.extend)
        journal.enqueue(first)
        ship(journal, shipper, target, source, db)
        assert listing(target) == {"D/a.jpg": b"a", "D/s/in.jpg": b"in", "E/e.jpg": b"e"}
        exchange(root / "D", root / "E")
        journal.enqueue_move(S, "D", "E", is_dir=True)   # the first FAN_RENAME: D -> E
        ship(journal, shipper, target, source, db)
        assert listing(target) == {"E/a.jpg": b"a", "E/s/in.jpg": b"in", "D/e.jpg": b"e"}
    finally:
        shipper.shutdown()
        journal.close()
