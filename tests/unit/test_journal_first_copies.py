"""mirrord.journal.first_copies: the states of a put in flight, what an ack keeps, for how
long, and when the source is asked. The alarm's shapes on real files, with the real
shipper and journal, are in tests/integration/test_alarm_first_copies.py."""

from __future__ import annotations

import threading

from mirrord.journal.first_copies import FirstCopies
from mirrord.journal.records import Op, Outcome
from mirrord.observe import Observed

S = "up"
NOW = (5, 1_000, 2_000)   # the source file as the write left it: (size, mtime_ns, ctime_ns)


def _op(path="f", *, oid=1, kind="put", target="t", is_dir=False, src=None) -> Op:
    return Op(oid, 1, target, S, path, kind, src, is_dir, False, 0, 0.0)


def _file(size=5, mtime_ns=1_000, ctime_ns=2_000) -> Observed:
    return Observed("file", size, mtime_ns / 1e9, mtime_ns, ctime_ns=ctime_ns)


def _landing(fc, target="t", path="f", now=NOW) -> bool:
    return fc.own_landing(target, S, path, lambda: now)


def test_a_put_handed_out_and_not_read_yet_lands_the_write_s_version():
    fc = FirstCopies()
    fc.sending([_op()])
    assert fc.any(S, "f", ("t",)) and not fc.any(S, "f", ("u",))
    assert _landing(fc)                                    # it reads the file after the write
    assert not _landing(fc, target="u")                    # nothing followed there


def test_while_the_worker_reads_nothing_is_known():
    fc = FirstCopies()
    fc.sending([_op()])
    fc.looking(_op())
    assert not _landing(fc)


def test_the_worker_s_look_decides_once_taken():
    fc = FirstCopies()
    fc.sending([_op()])
    fc.looking(_op())
    fc.looked(_op(), _file())
    assert _landing(fc)                                    # exactly the file as it is
    assert not _landing(fc, now=(5, 1_000, 2_001))         # written since the look
    assert not _landing(fc, now=(6, 1_000, 2_000))
    assert not _landing(fc, now=None)                      # gone since


def test_a_read_that_sends_nothing_lands_nothing():
    for seen in (None, Observed("absent"), Observed("dir")):   # busy or failed; gone; a dir
        fc = FirstCopies()
        fc.sending([_op()])
        fc.looking(_op())
        fc.looked(_op(), seen)
        assert _landing(fc, now=(9, 9, 9)), seen


def test_only_file_puts_are_followed():
    fc = FirstCopies()
    fc.sending([_op(kind="move", src="e"), _op("d", oid=2, kind="mkdir", is_dir=True),
                _op("g", oid=3, kind="attr"), _op("x", oid=4, kind="delete")])
    assert not any(fc.any(S, p, ("t",)) for p in ("f", "d", "g", "x"))


def test_a_worker_of_an_op_not_handed_out_changes_nothing():
    fc = FirstCopies()
    fc.looking(_op())
    fc.looked(_op(), _file())
    assert not fc.any(S, "f", ("t",))
    fc.sending([_op(oid=7)])                               # the row claimed again since
    fc.looked(_op(oid=1), _file(size=1))                   # a stale worker's answer
    assert _landing(fc)                                    # still the new claim's: not read


def test_an_ack_keeps_the_first_copy_and_forgets_the_put_in_flight():
    fc = FirstCopies()
    fc.sending([_op()])
    fc.looked(_op(), _file())
    out = Outcome(_op(), "put", 5, 1_000, ctime_ns=2_000)
    first = fc.first_of(out, lambda op: False)
    assert first == NOW
    fc.settled(out, first)
    assert not _landing(fc)                                # nothing in flight any more
    assert fc.own_shipped("t", S, "f", lambda: NOW)
    assert not fc.own_shipped("t", S, "f", lambda: (5, 1_000, 2_001))
    assert not fc.own_shipped("u", S, "f", lambda: NOW)


def test_a_put_over_a_version_the_target_held_keeps_nothing():
    fc = FirstCopies()
    fc.sending([_op()])
    fc.looked(_op(), _file())
    out = Outcome(_op(), "put", 5, 1_000, ctime_ns=2_000)
    assert fc.first_of(out, lambda op: True) is None       # a `shipped` row before the ack
    fc.settled(out, None)
    assert not fc.any(S, "f", ("t",))


def test_failed_put_and_later_acks_at_the_path():
    fc = FirstCopies()
    fc.sending([_op()])
    fc.looked(_op(), _file())
    out = Outcome(_op(), "put", 5, 1_000, ctime_ns=2_000)
    fc.settled(out, fc.first_of(out, lambda op: False))
    # a failed put (retried) leaves the acked first copy as it was
    fc.sending([_op(oid=1)])
    failed = Outcome(_op(), error="timeout")
    assert fc.first_of(failed, lambda op: False) is None
    fc.settled(failed, None)
    assert fc.own_shipped("t", S, "f", lambda: NOW)
    # a delete done there forgets it
    fc.settled(Outcome(_op(kind="delete"), "delete"), None)
    assert not fc.own_shipped("t", S, "f", lambda: NOW)
    # ... as does a rename of it away, at its old name
    fc.sending([_op("g", oid=2)])
    fc.looked(_op("g", oid=2), _file())
    out = Outcome(_op("g", oid=2), "put", 5, 1_000, ctime_ns=2_000)
    fc.settled(out, fc.first_of(out, lambda op: False))
    fc.settled(Outcome(_op("h", oid=3, kind="move", src="g"), "move"), None)
    assert not fc.own_shipped("t", S, "g", lambda: NOW)


def test_the_source_is_asked_only_for_a_look():
    fc, asked = FirstCopies(), []
    fc.sending([_op()])
    assert fc.own_landing("t", S, "f", lambda: asked.append(1))   # not read yet: no stat
    assert not fc.own_shipped("t", S, "f", lambda: asked.append(1))
    assert asked == []


def test_acked_first_copies_are_bounded_oldest_first():
    fc = FirstCopies(limit=3)
    for i in range(5):
        op = _op(f"f{i}", oid=i + 1)
        fc.sending([op])
        fc.looked(op, _file())
        out = Outcome(op, "put", 5, 1_000, ctime_ns=2_000)
        fc.settled(out, fc.first_of(out, lambda op: False))
    kept = [i for i in range(5) if fc.own_shipped("t", S, f"f{i}", lambda: NOW)]
    assert kept == [2, 3, 4]


def test_workers_on_threads_and_the_alarm_s_reads_do_not_trip_each_other():
    fc = FirstCopies()
    ops = [_op(f"f{i}", oid=i + 1) for i in range(2_000)]
    fc.sending(ops)

    def work(part):
        for op in part:
            fc.looking(op)
            fc.looked(op, _file())
    threads = [threading.Thread(target=work, args=(ops[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for i in range(0, 2_000, 97):
            fc.own_landing("t", S, f"f{i}", lambda: NOW)
    for t in threads:
        t.join()
    assert all(_landing(fc, path=f"f{i}") for i in range(2_000))


def test_the_first_copy_sent_again_unchanged_stays_the_first_copy():
    """A late event of the write that made f ran its row once more: the same version over
    the first copy is still the first copy; another version over it is not."""
    fc = FirstCopies()
    for oid, seen in ((1, _file()), (2, _file()), (3, _file(ctime_ns=2_001))):
        fc.sending([_op(oid=oid)])
        fc.looked(_op(oid=oid), seen)
        out = Outcome(_op(oid=oid), "put", 5, 1_000, ctime_ns=seen.ctime_ns)
        fc.settled(out, fc.first_of(out, lambda op: oid > 1))   # shipped from the 2nd on
        assert fc.own_shipped("t", S, "f", lambda: NOW) == (oid < 3), oid
