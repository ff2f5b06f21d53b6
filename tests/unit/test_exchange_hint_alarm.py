"""The hint an exchanged name's put carries (its row's src: where the bytes the target
holds at its path went, journal EnqueueMixin._upsert) against the mass-change alarm's
count of what a write destroys (mirrord.journal.held_files): a put with src counts no
overwrite, as the bytes it overwrites live on at the other name. Once that put's bytes
were sent (acked in flight, or maybe stored: ops.landed) they live at no other name, and
a write over them counts; a put that fails sent nothing and keeps it. And a directory move in flight handing its new name to its
source end (_hand_on_new_name) does so only when its row stops being the move, else a
removal above the new name counted the directory's files twice.

Found by two reviews (helper-134, helper-135) of the change that keeps the hint through
later puts."""

from __future__ import annotations

import pytest

from mirrord.journal import Change, Journal, Outcome
from tests.unit.test_rename_fallback_keeps_nothing import S, T, claim_one, j  # noqa: F401 (j)


def ship(jr: Journal, *names: str) -> None:
    """`names` put and acked, their directories made first (each its own size, mtime)."""
    dirs = sorted({n.rpartition("/")[0] for n in names} - {""})
    jr.enqueue([Change(S, d, "mkdir") for d in dirs] + [Change(S, n, "put") for n in names])
    while ops := jr.claim(T, 100):
        jr.ack([Outcome(o, o.kind, is_dir=o.is_dir, size=10 + i, mtime_ns=1000 + i)
                for i, o in enumerate(ops)])


def exchanged(jr: Journal) -> None:
    """a and b shipped, then `mv --exchange a b` as fanotify reads it; b's put done."""
    ship(jr, "a", "b")
    jr.enqueue_move(S, "a", "b", is_dir=False)
    jr.enqueue([Change(S, "a", "put"), Change(S, "b", "put")])


@pytest.mark.parametrize("writes", [0, 1, 2])
def test_a_landed_version_of_an_exchanged_name_counts_when_overwritten(j, writes):
    exchanged(j)
    for _ in range(writes):
        j.enqueue([Change(S, "a", "put")])
    j.ack([Outcome(claim_one(j), "put", size=20, mtime_ns=2000)])          # b's put
    put_a = claim_one(j)
    assert (put_a.path, put_a.src) == ("a", "b")
    j.ack([Outcome(put_a, error="ChangedWhileSent: changed", busy=True, landed=True)])
    assert j.overwrites(S, "a")


@pytest.mark.parametrize("during", ["attr", "put"])
def test_a_hinted_put_acked_after_a_change_in_flight_leaves_no_hint(j, during):
    exchanged(j)
    j.ack([Outcome(claim_one(j), "put", size=20, mtime_ns=2000)])
    put_a = claim_one(j)
    assert (put_a.path, put_a.src) == ("a", "b")
    j.enqueue([Change(S, "a", during)])                                    # in flight
    j.ack([Outcome(put_a, "put", size=30, mtime_ns=3000)])
    assert j.db.execute("SELECT src FROM ops WHERE path = ?", (b"a",)).fetchone()[0] is None
    assert j.overwrites(S, "a")


@pytest.mark.parametrize("change", ["mkdir", "attr"])
def test_a_removal_above_a_directory_moved_in_flight_counts_its_files_once(j, change):
    ship(j, "d1/f0", "d1/f1", "d1/f2", "p/keep")
    assert j.enqueue_move(S, "d1", "p/x", is_dir=True) == []
    claim_one(j)
    j.enqueue([Change(S, "p/x", change, proposed=change == "mkdir")])
    assert j.files_removed_with(S, "p") == 1 + 3


# A second review (helper-135) of the same change:
def test_a_hinted_put_that_fails_after_a_chmod_keeps_its_hint(j):
    """The hint goes with the bytes: a put in flight that fails sends none, so the row
    keeps it (no overwrite counted, the retry settles the exchange)."""
    exchanged(j)
    j.ack([Outcome(claim_one(j), "put", size=20, mtime_ns=2000)])          # b's put
    put_a = claim_one(j)
    assert (put_a.path, put_a.src) == ("a", "b")
    j.enqueue([Change(S, "a", "attr")])                                    # chmod in flight
    j.ack([Outcome(put_a, error="TransientError: 503 Slow Down")])         # nothing stored
    assert not j.overwrites(S, "a")        # as without the chmod: a's old bytes live at b
    j.clock.now += 3600
    again = claim_one(j)
    assert (again.path, again.src) == ("a", "b")


@pytest.mark.parametrize("how", ["move-in-flight", "fallback", "mkdir-in-flight"])
def test_a_removal_above_a_removed_new_name_counts_its_files_once(j, how):
    """`mv d1 p/x; rm -rf p/x; rm -rf p`: the first removal counts d1's files, the second
    only p/keep (it counted d1's again through the name handed on, and a fallback's)."""
    ship(j, "d1/f0", "d1/f1", "d1/f2", "p/keep")
    if how == "fallback":
        j.enqueue([Change(S, "d1/f0", "attr")])
        assert j.enqueue_move(S, "d1", "p/x", is_dir=True) == [T]
    else:
        assert j.enqueue_move(S, "d1", "p/x", is_dir=True) == []
        claim_one(j)
        if how == "mkdir-in-flight":
            j.enqueue([Change(S, "p/x", "mkdir", proposed=True)])
    assert j.files_removed_with(S, "p/x") == 3
    j.enqueue([Change(S, "p/x", "delete", tree=True)])
    assert j.files_removed_with(S, "p") == 1


def test_a_landed_version_renamed_away_is_not_overwritten_by_a_new_file(j):
    """A log appended while it was sent (the put may be stored), then rotated (`mv a b`,
    a fallback: a's row is pending) and written anew: its bytes live on at b."""
    ship(j, "a")
    j.enqueue([Change(S, "a", "put")])
    j.ack([Outcome(claim_one(j), error="ChangedWhileSent: changed", busy=True, landed=True)])
    j.enqueue_move(S, "a", "b", is_dir=False)
    j.enqueue([Change(S, "a", "put")])            # the new a: a's row a put naming b
    assert not j.overwrites(S, "a")               # its next write replaces nothing held


def test_files_shipped_below_leaves_out_those_whose_delete_is_queued(j):
    """files_removed_with takes a queued delete off already: files_shipped_below (what the
    alarm looks for elsewhere) must not offer it again (`mv --exchange a b; rm -rf b` read
    with the exchange in flight counted 1 for ten files)."""
    ship(j, "b/g1", "b/g2", "b/sub/g3", "b/sub/g4", "c/h")
    j.enqueue([Change(S, "b/g1", "delete"), Change(S, "b/sub", "delete", tree=True)])
    assert [row[0] for row in j.files_shipped_below(S, "b")] == ["b/g2"]
    # a removal queued at `path` itself is not between: its own files are offered
    assert [row[0] for row in j.files_shipped_below(S, "b/sub")] == ["b/sub/g3", "b/sub/g4"]
    assert j.holds(S, "b/g2") and not j.holds(S, "b/nothing")
