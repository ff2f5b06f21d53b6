"""A put the target stored whose file changed while it was sent (errors.ChangedWhileSent):
not recorded as shipped, sent again, and held by the target all the same. The mass-change
alarm counts a write that destroys it (mirrord.journal.first_copies: landed, not recorded).

Found by a CI run of tests/e2e/test_alarm_slow_rewrite.py (17 of 20): the start's catch-up
put a file, the test saw the mirror converged and rewrote the file in place, the worker's
check after the send turned the outcome into a wait, and the rewrite's event, read after
that answer, found no `shipped` row and no put in flight: 0. Each shape of that hole is
asked here: the rewrite read after the answer, read after the next put's ack, a tree
removal above, a chain of such answers (counted once), a delete acked since; and the
controls: an append to a first copy, a removal recorded before the write, a delete of it.
Real journal, real source files, the real shipper on LocalTargets (the Site harness of
tests/integration/test_alarm_first_copies.py).
"""

from __future__ import annotations

from pathlib import Path

from mirrord import ship_rules
from mirrord.alarm_batch import count_batch
from mirrord.alarm_replaced import Replaced
from mirrord.journal import Change, Journal
from tests.integration.test_alarm_first_copies import S, Site, site  # noqa: F401 - the fixture


def _landed(site: Site, monkeypatch, rel: str, target: str = "t") -> None:
    """The put of `rel` claimed and sent to `target`, its worker then finding the file
    changed (observe.changed_since, forced): acked as a wait, the bytes on the target."""
    with monkeypatch.context() as m:
        m.setattr(ship_rules, "changed_since", lambda *a: True)
        outs = site.read(target, site.claim(target))
    assert [(o.op.path, o.busy, o.landed) for o in outs] == [(rel, True, True)], outs
    site.journal.ack(outs)
    assert (Path(site.targets[target].root) / rel).exists()
    assert site.journal.rows_at_or_below(S, rel)          # sent again, not shipped


def _new(site: Site, rel: str, data: bytes, targets=("t",)) -> None:
    site.write(rel, data)
    site.journal.enqueue([Change(S, rel, "put", targets=targets)])


def test_a_rewrite_read_after_the_answer_counts(site, monkeypatch):
    """The CI shape: a new file's put landed, then the answer; the rewrite counts 1 (0
    before), with or without a look at the source."""
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    site.write("x/new", b"ENCRYPTED" * 333)
    assert site.counted("x/new") == 1
    assert site.counted("x/new", look=False) == 1


def test_an_append_to_a_landed_first_copy_counts_nothing(site, monkeypatch):
    """Control: the landed version was the file's first copy and the write only extends
    it (a log, a slow upload): it destroys nothing (mirrord.appends)."""
    _new(site, "x/log", b"line\n" * 2000)
    _landed(site, monkeypatch, "x/log")
    with open(site.root / "x" / "log", "ab") as fh:
        fh.write(b"one more line\n")
    assert site.counted("x/log") == 0


def test_a_rewrite_read_after_the_next_put_s_ack_counts(site, monkeypatch):
    """Landed, then rewritten; the next put sends the rewrite and is acked before the
    rewrite's event is read. That version replaced the landed one: not a first copy, so
    the late event counts 1 (0 before: no `shipped` row at its ack, taken as the first)."""
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    site.write("x/new", b"ENCRYPTED" * 333)
    site.ship("t", site.claim("t"))
    assert (Path(site.targets["t"].root) / "x" / "new").read_bytes() == b"ENCRYPTED" * 333
    assert site.counted("x/new") == 1


def test_a_chain_of_such_answers_is_one_rewrite_counted_once(site, monkeypatch):
    """A writer that keeps changing the file while each put is sent: each answer lands
    another version (the first one is the base the alarm's note names), one rewrite in
    all: 1, as a put in flight over a shipped version counts once. The next put's ack over
    them, then an append to it: nothing more (made by a counted write)."""
    replaced = Replaced()
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    counts = []
    for n in range(3):
        site.write("x/new", f"rewrite {n} ".encode() * 300)
        counts.append(site.counted("x/new", replaced=replaced))
        _landed(site, monkeypatch, "x/new")
    site.ship("t", site.claim("t"))
    with open(site.root / "x" / "new", "ab") as fh:
        fh.write(b"appended")
    counts.append(site.counted("x/new", replaced=replaced))
    assert counts == [1, 0, 0, 0], counts


def test_a_retry_refused_before_sending_keeps_it_held(site, monkeypatch):
    """Landed, then the file held open for writing: the next put is refused before it
    sends (the read lease), which changes nothing the target holds: the rewrite counts 1,
    and its later reports nothing more."""
    replaced = Replaced()
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    with open(site.root / "x" / "new", "r+b") as writer:
        writer.write(b"Z" * 3000)
        writer.flush()
        first = site.counted("x/new", replaced=replaced)
        outs = site.read("t", site.claim("t"))
        assert [(o.busy, o.landed) for o in outs] == [(True, False)], outs
        site.journal.ack(outs)
        writer.write(b"Z" * 3000)
        writer.flush()
        second = site.counted("x/new", replaced=replaced)
    assert (first, second) == (1, 0)


def test_a_tree_removal_counts_a_landed_file_below_it(site, monkeypatch):
    """x holds x/a (shipped) and x/new (landed only): `rm -rf x` takes 2 files off t (1
    before)."""
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    assert site.journal.files_removed_with(S, "x", target="t") == 2
    assert count_batch(site.journal, site.resends, S, [Change(S, "x", "delete", tree=True)],
                       root=str(site.root)) == 2


def test_a_removal_recorded_first_and_a_delete_acked_take_it_away(site, monkeypatch):
    """Controls: `rm -rf x` recorded (counted with x/new), then x/new made again: a new
    file, 0. And a landed file deleted, its delete acked, then made again: 0."""
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    site.journal.enqueue([Change(S, "x", "delete", tree=True)])
    site.write("x/new", b"made again")
    assert site.counted("x/new") == 0

    (site.root / "y").mkdir()
    site.journal.enqueue([Change(S, "y", "mkdir")])
    site.drain()
    _new(site, "y/gone", b"first version " * 300)
    _landed(site, monkeypatch, "y/gone")
    (site.root / "y" / "gone").unlink()
    site.journal.enqueue([Change(S, "y/gone", "delete", targets=("t",))])
    site.ship("t", site.claim("t"))
    assert not (Path(site.targets["t"].root) / "y" / "gone").exists()
    site.write("y/gone", b"made again")
    assert site.counted("y/gone") == 0


def test_a_landed_file_whose_delete_is_queued_counts_once(site, monkeypatch):
    """A landed file deleted (its delete counted when it was recorded, still queued), then
    made again: the new file destroys nothing more, 0 (1 before: the landed version
    counted a second time), as a shipped version's pending delete does (_GOING_AWAY)."""
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    (site.root / "x" / "new").unlink()
    assert count_batch(site.journal, site.resends, S, [Change(S, "x/new", "delete")],
                       root=str(site.root)) == 1
    site.journal.enqueue([Change(S, "x/new", "delete")])
    site.write("x/new", b"made again")
    assert site.counted("x/new") == 0


def test_a_put_cut_short_by_a_crash_is_held_after_the_restart(site, tmp_path):
    """x/new's put stored on t, its ack never came (`kill -9`): the next start releases the
    claim, and the rewrite before the put is sent again counts 1 (0 before: no `shipped`
    row, nothing in flight), its later reports nothing more; the put sent again and acked
    replaced that unknown version, so an append to it counts nothing more either."""
    _new(site, "x/new", b"first version " * 300)
    site.read("t", site.claim("t"))                       # stored on t, never acked
    assert (Path(site.targets["t"].root) / "x" / "new").exists()
    with site.journal.transaction():
        site.journal.db.execute("UPDATE ops SET claimer = 'gone' WHERE claimed != 0")
    site.journal.close()
    site.journal = Journal(tmp_path / "journal.db", {S: ("t", "u")})   # the next start
    replaced = Replaced()
    site.write("x/new", b"ENCRYPTED" * 333)
    counts = [site.counted("x/new", replaced=replaced), site.counted("x/new", replaced=replaced)]
    site.shipper.looks = site.journal.first_copies
    site.ship("t", site.claim("t"))
    with open(site.root / "x" / "new", "ab") as fh:
        fh.write(b"appended")
    counts.append(site.counted("x/new", replaced=replaced))
    assert counts == [1, 0, 0], counts


def _restart(site: Site, tmp_path: Path) -> None:
    """The daemon stopped and started again: a new Journal (nothing kept in memory)."""
    site.journal.close()
    site.journal = Journal(tmp_path / "journal.db", {S: ("t", "u")})
    site.shipper.looks = site.journal.first_copies


def test_a_landed_version_is_held_after_a_restart(site, monkeypatch, tmp_path):
    """Landed (errors.ChangedWhileSent), then the daemon restarted before the put was sent
    again: the journal keeps it (ops.landed), so the rewrite counts 1 after the restart as
    before it (0 when it was kept in memory only), and `rm -rf x` takes 2 files (1)."""
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    site.write("x/new", b"ENCRYPTED" * 333)
    before = site.counted("x/new")
    _restart(site, tmp_path)
    assert (before, site.counted("x/new"), site.counted("x/new", look=False)) == (1, 1, 1)
    assert site.journal.files_removed_with(S, "x", target="t") == 2
    assert site.journal.held_versions(S, "x/new")[0][:4] == ("t", -1, -1, "landed")


def test_a_crash_s_first_copy_sent_again_is_a_first_copy(site, tmp_path):
    """A new file's put stored on t and cut short by `kill -9`; after the restart it is
    sent again and acked with no write between: the version acked is the file's first
    copy, so an append to it counts nothing (1 when the unknown version it replaced made
    it an overwrite's result: up to one per put in flight at the crash)."""
    _new(site, "x/new", b"first version " * 300)
    site.read("t", site.claim("t"))                       # stored on t, never acked
    with site.journal.transaction():
        site.journal.db.execute("UPDATE ops SET claimer = 'gone' WHERE claimed != 0")
    _restart(site, tmp_path)                              # releases the claim
    assert site.journal.db.execute("SELECT claimed, landed FROM ops").fetchall() == [(0, 1)]
    site.ship("t", site.claim("t"))
    with open(site.root / "x" / "new", "ab") as fh:
        fh.write(b"appended")
    assert site.counted("x/new") == 0


def test_a_landing_another_process_s_op_took_away_is_not_held(site, monkeypatch, tmp_path):
    """x/new landed in the daemon, then `mirrord reconcile` (another Journal on the same
    file) shipped the path's delete: the daemon's memory of the landing is stale. A new
    file made there is a first version: 0 (1 before), and `rm -rf x` takes x/a and that
    new file's put in flight, not a third (3 before)."""
    _new(site, "x/new", b"first version " * 300)
    _landed(site, monkeypatch, "x/new")
    (site.root / "x" / "new").unlink()
    site.journal.enqueue([Change(S, "x/new", "delete", targets=("t",))])
    other = Journal(tmp_path / "journal.db", {S: ("t", "u")})   # the reconcile's process
    try:
        ops = other.claim("t", 1000, now=2e9)
        other.ack(site.shipper.run_ops(site.targets["t"], ops))
    finally:
        other.close()
    assert not (Path(site.targets["t"].root) / "x" / "new").exists()
    _new(site, "x/new", b"a new file " * 100)
    assert site.counted("x/new") == 0
    assert site.journal.files_removed_with(S, "x", target="t") == 1
    site.claim("t")                                       # the new file's put in flight
    assert site.journal.files_removed_with(S, "x", target="t") == 2


def test_a_landing_recorded_by_another_process_is_held(site, monkeypatch, tmp_path):
    """The reconcile's put landed (ChangedWhileSent in that process): the daemon keeps
    nothing of it in memory, the journal does: a rewrite counts 1, unknown version."""
    _new(site, "x/new", b"first version " * 300)
    other = Journal(tmp_path / "journal.db", {S: ("t", "u")})
    try:
        ops = other.claim("t", 1000, now=2e9)
        with monkeypatch.context() as m:
            m.setattr(ship_rules, "changed_since", lambda *a: True)
            outs = site.shipper.run_ops(site.targets["t"], ops)
        assert [(o.op.path, o.landed) for o in outs] == [("x/new", True)]
        other.ack(outs)
    finally:
        other.close()
    site.write("x/new", b"ENCRYPTED" * 333)
    assert site.counted("x/new") == 1
