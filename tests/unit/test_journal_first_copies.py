"""mirrord.journal.first_copies: the states of a put in flight, what an ack keeps, for how
long, and when the source is asked. The alarm's shapes on real files, with the real
shipper and journal, are in tests/integration/test_alarm_first_copies.py."""

from __future__ import annotations

import threading

import pytest

from mirrord.appends import WHOLE
from mirrord.journal.first_copies import FirstCopies
from mirrord.journal.records import Op, Outcome
from mirrord.observe import Observed

S = "up"
NOW = (5, 1_000, 2_000)   # the source file as the write left it: (size, mtime_ns, ctime_ns)
OLD = (3, 500, None)      # a `shipped` row there before: (size, mtime_ns, mode)


def _op(path="f", *, oid=1, kind="put", target="t", is_dir=False, src=None) -> Op:
    return Op(oid, 1, target, S, path, kind, src, is_dir, False, 0, 0.0)


def _file(size=5, mtime_ns=1_000, ctime_ns=2_000) -> Observed:
    return Observed("file", size, mtime_ns / 1e9, mtime_ns, ctime_ns=ctime_ns)


def _acked_first_copy(fc) -> None:
    """`f`'s put (op 1) handed out, read as NOW and acked where nothing was shipped."""
    fc.sending([_op()])
    fc.looked(_op(), _file())
    out = Outcome(_op(), "put", 5, 1_000, ctime_ns=2_000)
    fc.settled(out, fc.first_of(out, lambda op: None))


def _own(fc, current, target="t", path="f", row=None, counted=(),
         extends=lambda size, digest: False) -> bool:
    """own_shipped, the target's `shipped` row (size, mtime_ns, mode) being the version
    kept there (`row`: another); `counted`: the (size, mtime_ns, number) rows the alarm
    counted an overwrite of; `extends`: appends.extends on the source file."""
    kept = fc._acked.get((target, S, path))
    meta = row if row is not None else (*kept[0][:2], None) if kept else None
    return fc.own_shipped(target, S, path, current, lambda: meta, extends,
                          counted=lambda *row: row in counted)


def _landing(fc, target="t", path="f", now=NOW) -> bool:
    return fc.own_landing(target, S, path, lambda: now)


def test_a_put_handed_out_and_not_read_yet_lands_the_write_s_version():
    fc = FirstCopies()
    fc.sending([_op()])
    assert fc.any(S, "f", ("t",)) and not fc.any(S, "f", ("u",))
    assert _landing(fc)                                    # it reads the file after the write
    assert not _landing(fc, target="u")                    # nothing followed there


def test_while_the_worker_reads_nothing_is_known():
    fc = FirstCopies(look_wait=0.01)
    fc.sending([_op()])
    fc.looking(_op())
    assert not _landing(fc)                                # still reading after the wait


def test_a_read_under_way_is_waited_for():
    """The alarm asks while the worker reads: it waits for the look (a worker thread that
    finishes 20 ms later) and decides on it."""
    for seen, lands_own in ((_file(), True), (_file(size=4), False), (None, True)):
        fc = FirstCopies(look_wait=10.0)
        fc.sending([_op()])
        fc.looking(_op())
        worker = threading.Timer(0.02, fc.looked, (_op(), seen))
        worker.start()
        assert _landing(fc) is lands_own, seen
        worker.join()


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
    first = fc.first_of(out, lambda op: None)
    assert first == (NOW, b"", True, None, 1)
    fc.settled(out, first)
    assert not _landing(fc)                                # nothing in flight any more
    assert _own(fc, lambda: NOW, "t", "f")
    assert not _own(fc, lambda: (5, 1_000, 2_001), "t", "f")
    assert not _own(fc, lambda: NOW, "u", "f")


def test_a_put_over_a_version_the_target_held_is_kept_as_no_harmless_copy():
    fc = FirstCopies()
    fc.sending([_op()])
    fc.looked(_op(), _file())
    out = Outcome(_op(), "put", 5, 1_000, ctime_ns=2_000)
    assert fc.first_of(out, lambda op: OLD)[2:4] == (False, (3, 500, 0))   # shipped before
    fc.settled(out, fc.first_of(out, lambda op: OLD))
    assert not _landing(fc) and not _own(fc, lambda: NOW, "t", "f")
    # ... unless the alarm counted the overwrite of the version it replaced: the write
    # that made it was counted (mirrord.alarm_replaced)
    assert _own(fc, lambda: NOW, counted={(3, 500, 0)})
    assert not _own(fc, lambda: NOW, counted={(3, 501, 0), (5, 1_000, 0), (3, 500, 1)})
    assert not _own(fc, lambda: (5, 1_000, 2_001), counted={(3, 500, 0)})   # changed since


def test_the_same_version_sent_again_keeps_how_it_was_made():
    """A version kept as made over a shipped row (not harmless, that row noted) and sent
    again unchanged (its late event ran the row once more) keeps the row it replaced, not
    its own shipped row: the count of that overwrite still makes it harmless."""
    fc = FirstCopies()
    for oid, before in ((1, OLD), (2, (5, 1_000, None))):
        fc.sending([_op(oid=oid)])
        fc.looked(_op(oid=oid), _file())
        out = Outcome(_op(oid=oid), "put", 5, 1_000, ctime_ns=2_000)
        kept = fc.first_of(out, lambda op: before)
        fc.settled(out, kept)
        assert kept[:4] == (NOW, b"", False, (3, 500, 0)), oid


def test_failed_put_and_later_acks_at_the_path():
    fc = FirstCopies()
    _acked_first_copy(fc)
    # a failed put (retried) leaves the acked first copy as it was
    fc.sending([_op(oid=1)])
    failed = Outcome(_op(), error="timeout")
    assert fc.first_of(failed, lambda op: None) is None
    fc.settled(failed, None)
    assert _own(fc, lambda: NOW, "t", "f")
    # a delete done there forgets it
    fc.settled(Outcome(_op(kind="delete"), "delete"), None)
    assert not _own(fc, lambda: NOW, "t", "f")
    # ... as does a rename of it away, at its old name
    fc.sending([_op("g", oid=2)])
    fc.looked(_op("g", oid=2), _file())
    out = Outcome(_op("g", oid=2), "put", 5, 1_000, ctime_ns=2_000)
    fc.settled(out, fc.first_of(out, lambda op: None))
    fc.settled(Outcome(_op("h", oid=3, kind="move", src="g"), "move"), None)
    assert not _own(fc, lambda: NOW, "t", "g")


def test_the_source_is_asked_only_for_a_look():
    fc, asked = FirstCopies(), []
    fc.sending([_op()])
    assert fc.own_landing("t", S, "f", lambda: asked.append(1))   # not read yet: no stat
    assert not _own(fc, lambda: asked.append(1), "t", "f")
    assert asked == []


def test_acked_first_copies_are_bounded_oldest_first():
    fc = FirstCopies(limit=3)
    for i in range(5):
        op = _op(f"f{i}", oid=i + 1)
        fc.sending([op])
        fc.looked(op, _file())
        out = Outcome(op, "put", 5, 1_000, ctime_ns=2_000)
        fc.settled(out, fc.first_of(out, lambda op: None))
    kept = [i for i in range(5) if _own(fc, lambda: NOW, "t", f"f{i}")]
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
        fc.settled(out, fc.first_of(out, lambda op: OLD if oid > 1 else None))   # shipped from the 2nd on
        assert _own(fc, lambda: NOW, "t", "f") == (oid < 3), oid


def test_a_version_extending_the_kept_one_is_kept_harmless_and_a_rewrite_is_not():
    """An append's version: the worker is asked for the kept version's size as `prefix`,
    and the kept sample found there makes it harmless even over a version the target held
    before (a `shipped` row): the late event of that append, the file as sent, counts
    nothing. A version whose head differs is a rewrite: kept, not harmless."""
    fc, asked = FirstCopies(), []

    def worker(oid, size, sample, prefix_sample=b""):
        def observe(**kw):
            asked.append(kw)
            return Observed("file", size, 1.0, 1_000 * oid, ctime_ns=2_000 * oid,
                            sample=sample, prefix_sample=prefix_sample)
        fc.sending([_op(oid=oid)])
        fc.observed(_op(oid=oid), observe)
        out = Outcome(_op(oid=oid), "put", size, 1_000 * oid, ctime_ns=2_000 * oid)
        kept = fc.first_of(out, lambda op: OLD)            # a version was shipped before
        fc.settled(out, kept)
        return kept

    v1 = worker(1, 5, b"s1")
    assert asked[-1] == {"sample": True, "prefix": 0} and v1[:4] == ((5, 1_000, 2_000), b"s1", False, (3, 500, 0))
    v2 = worker(2, 9, b"s2", prefix_sample=b"s1")          # v1 at its head: an append
    assert asked[-1] == {"sample": True, "prefix": 5} and v2[2] is True
    assert _own(fc, lambda: v2[0], "t", "f")      # the append's late event
    assert not _own(fc, lambda: v2[0], row=(9, 7, None))   # another process shipped since
    assert not _own(fc, lambda: (9, 2_000, 4_001), "t", "f")   # changed since
    v3 = worker(3, 12, b"s3", prefix_sample=b"XX")         # v2's head rewritten
    assert asked[-1]["prefix"] == 9 and v3[2] is False
    assert not _own(fc, lambda: v3[0], "t", "f")  # its late event counts
    v4 = worker(4, 12, b"s4")                              # not longer: no prefix sampled
    assert v4[2] is False


@pytest.mark.parametrize("size, counts", [(WHOLE, False), (WHOLE + 1, True)],
                         ids=["sampled whole", "longer"])
def test_the_very_bytes_under_a_new_mtime_count_nothing_when_sampled_whole(size, counts):
    """coreutils `touch` seen live (a trial, helper-161): the bytes stay, the mtime and
    ctime move, and the write counted one overwrite of the first copy sent. A file of at
    most appends.WHOLE bytes is sampled whole, so the same size and sample are the same
    bytes: the write destroyed nothing (own_shipped), and the version its put sends is
    made harmlessly (a second touch counts nothing either). A longer file's same size and
    ends prove nothing: counted, and its version is no harmless one."""
    fc, asked = FirstCopies(), []

    def worker(oid, mtime_ns, shipped):
        def observe(**kw):
            asked.append(kw)
            return Observed("file", size, mtime_ns / 1e9, mtime_ns, ctime_ns=mtime_ns + 1,
                            sample=b"same bytes")
        fc.sending([_op(oid=oid)])
        fc.observed(_op(oid=oid), observe)
        out = Outcome(_op(oid=oid), "put", size, mtime_ns, ctime_ns=mtime_ns + 1)
        kept = fc.first_of(out, lambda op: shipped)
        fc.settled(out, kept)
        return kept

    def extends(n, digest):   # the source file holds the same bytes, `size` of them
        return n == size and digest == b"same bytes"

    v1 = worker(1, 1_000, None)                            # the first copy
    assert v1[2] is True
    touched = (size, 5_000, 5_001)
    assert _own(fc, lambda: touched, extends=extends) is not counts
    assert not _own(fc, lambda: touched)                   # other bytes there now: counted
    v2 = worker(2, 5_000, (size, 1_000, None))             # the touch's put, over v1
    assert asked[-1]["prefix"] == size and v2[2] is not counts
    again = (size, 9_000, 9_001)                           # a second touch
    assert _own(fc, lambda: again, extends=extends) is not counts


def test_a_look_that_raises_sends_nothing_and_keeps_the_kept_version():
    fc = FirstCopies()
    _acked_first_copy(fc)
    fc.sending([_op(oid=2)])

    def busy(**kw):
        raise OSError("busy")
    with pytest.raises(OSError):
        fc.observed(_op(oid=2), busy)
    assert _landing(fc, now=(7, 1, 1))                     # nothing lands
    assert _own(fc, lambda: NOW, "t", "f")        # the first copy still held


def test_each_version_acked_gets_a_number_and_the_row_it_replaced_keeps_its_own():
    """Version numbers tell apart versions of one size and mtime (a file restored with
    `cp -p`): a new look acked gets a new number, the same look sent again keeps it; the
    Row an ack replaced carries the number of the version kept there when that is the
    row's version, else 0; number() answers it for a `shipped` row's size and mtime."""
    fc = FirstCopies()

    def ack(oid, seen, before):
        fc.sending([_op(oid=oid)])
        fc.looked(_op(oid=oid), seen)
        out = Outcome(_op(oid=oid), "put", seen.size, seen.mtime_ns, ctime_ns=seen.ctime_ns)
        kept = fc.first_of(out, lambda op: before)
        fc.settled(out, kept)
        return kept

    first = ack(1, _file(), None)                                # a first copy: number 1
    assert first[3:] == (None, 1) and fc.number("t", S, "f", 5, 1_000) == 1
    assert fc.number("t", S, "f", 5, 999) == 0 and fc.number("u", S, "f", 5, 1_000) == 0
    again = ack(2, _file(), (5, 1_000, None))                    # the same look again
    assert again[4] == 1
    restored = ack(3, _file(ctime_ns=3_000), (5, 1_000, None))  # same size and mtime, restored
    assert restored[3:] == ((5, 1_000, 1), 2)
    other = ack(4, _file(size=9, ctime_ns=4_000), (7, 7, None))  # over a row not kept here
    assert other[3:] == ((7, 7, 0), 3)


def _landed_put(fc, oid: int, look=(5, 1_000, 2_000), shipped=None) -> None:
    """`f`'s put (op `oid`) handed out, read as `look`, stored, then found changed:
    answered as a wait that landed (errors.ChangedWhileSent)."""
    fc.sending([_op(oid=oid)])
    fc.looked(_op(oid=oid), _file(*look))
    out = Outcome(_op(oid=oid), error="ChangedWhileSent: changed", busy=True, landed=True)
    fc.settled(out, fc.first_of(out, lambda op: shipped))


def test_a_landed_version_is_held_until_an_ack_at_its_path_replaces_it():
    """A put stored and then found changed leaves a version no `shipped` row names: held
    (a write that destroys it counts), its first such version the base the alarm's note
    names, kept through later ones and through waits that landed nothing, gone at the
    path's next ack (which replaces the base: not a first copy) or delete."""
    fc = FirstCopies()
    _landed_put(fc, 1)
    assert fc.any(S, "f", ("t",))
    assert fc.landed_base("t", S, "f") == (5, 1_000, 1)
    assert fc.landed("t", S, "f", lambda: (5, 1_500, 2_500))      # rewritten: destroyed
    assert not fc.landed("t", S, "f", lambda: NOW)               # still that first copy
    assert fc.landed("t", S, "f", None)                          # not looked at: held
    # nothing kept for `u`: the journal asks ops.landed first; landed there, unknown
    assert fc.landed("u", S, "f", None) and fc.landed("u", S, "f", lambda: NOW)
    _landed_put(fc, 2, look=(6, 1_500, 2_500))                     # another one lands
    assert fc.landed_base("t", S, "f") == (5, 1_000, 1)          # one rewrite: one base
    busy = Outcome(_op(oid=3), error="SourceBusy: open", busy=True)
    fc.sending([_op(oid=3)])
    fc.settled(busy, fc.first_of(busy, lambda op: None))         # refused before sending
    assert fc.landed_base("t", S, "f") == (5, 1_000, 1)
    fc.sending([_op(oid=4)])
    fc.looked(_op(oid=4), _file(7, 2_000, 3_000))
    done = Outcome(_op(oid=4), "put", 7, 2_000, ctime_ns=3_000)
    kept = fc.first_of(done, lambda op: None)
    assert kept[2:4] == (False, (5, 1_000, 1))                   # it replaced the base
    fc.settled(done, kept)
    assert fc.landed_base("t", S, "f") is None
    _landed_put(fc, 5, look=(8, 2_500, 3_500), shipped=(7, 2_000, None))
    fc.settled(Outcome(_op(oid=6, kind="delete")), None)
    assert fc.landed_base("t", S, "f") is None and not fc.any(S, "f", ("t",))


def test_a_landed_version_another_process_s_op_replaced_is_dropped_at_the_next_ack():
    """ops.landed cleared (`mirrord reconcile` acked the path's delete, then a new file
    came): what is kept of the old landing is stale. The next ack drops it: its version is
    a first copy again (made harmlessly), and a landing after it starts a new base."""
    fc = FirstCopies()
    _landed_put(fc, 1)
    fc.sending([_op(oid=2)])
    fc.looked(_op(oid=2), _file(9, 3_000, 4_000))
    done = Outcome(_op(oid=2), "put", 9, 3_000, ctime_ns=4_000)
    kept = fc.first_of(done, lambda op: None, lambda op: False)
    assert kept[2:4] == (True, None)
    fc.settled(done, kept)
    assert fc.landed_base("t", S, "f") is None
    fc.sending([_op(oid=3)])
    fc.looked(_op(oid=3), _file(4, 5_000, 6_000))
    out = Outcome(_op(oid=3), error="ChangedWhileSent: changed", busy=True, landed=True)
    fc.settled(out, fc.first_of(out, lambda op: (9, 3_000, None), lambda op: True))
    assert fc.landed_base("t", S, "f")[:2] == (4, 5_000)


def test_a_stale_landing_is_not_the_base_of_the_next_one():
    fc = FirstCopies()
    _landed_put(fc, 1)                                             # base (5, 1000, n)
    fc.sending([_op(oid=2)])
    fc.looked(_op(oid=2), _file(6, 2_000, 3_000))
    out = Outcome(_op(oid=2), error="ChangedWhileSent: changed", busy=True, landed=True)
    fc.settled(out, fc.first_of(out, lambda op: None, lambda op: False))   # cleared meanwhile
    assert fc.landed_base("t", S, "f")[:2] == (6, 2_000)


def test_a_put_after_a_landing_this_process_kept_nothing_of_is_a_first_copy():
    """A crash cut a new file's put short (ops.landed set at the restart: release_claims):
    nothing of it is kept here. Its put sent again and acked is a first copy: an append to
    it destroys nothing (it counted one per put in flight at the crash)."""
    fc = FirstCopies()
    fc.sending([_op(oid=1)])
    fc.looked(_op(oid=1), _file())
    done = Outcome(_op(oid=1), "put", 5, 1_000, ctime_ns=2_000)
    kept = fc.first_of(done, lambda op: None, lambda op: True)
    assert kept[2:4] == (True, None)
