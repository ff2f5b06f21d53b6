"""swaps.redundant() hands its bound to the target: it asks Target.trash_list for the versions
stamped at the change's whole second or later (since=int(item.when)), so the target lists
what was kept since the exchange, not its whole trash; and a version kept a microsecond
before that second, though the same bytes, is not dropped (memory target)."""

from __future__ import annotations

from mirrord.targets.memory import MemoryTarget
from mirrord.targets.model import SyncItem
from mirrord.trash import swaps
from mirrord.trash.model import stamp_of

B = 1_700_000_100
NS_A, NS_B = 1_000_000_000_000_000_001, 2_000_000_000_000_000_002


def _put(t, tmp_path, path: str, data: bytes, ns: int) -> None:
    f = tmp_path / "put"
    f.write_bytes(data)
    t.put(path, str(f), size=len(data), mtime=ns / 1e9, mtime_ns=ns)


def test_redundant_asks_the_target_from_the_changes_whole_second(tmp_path):
    t = MemoryTarget()
    asked: list[tuple[str, float | None]] = []
    real = t.trash_list
    t.trash_list = lambda prefix="", *, since=None: asked.append((prefix, since)) or real(
        prefix, since=since)
    _put(t, tmp_path, "a", b"bytes of b, longer", NS_B)     # a now holds b's old bytes
    t.keep("a", stamp=stamp_of(B - 0.000001), coming="file")  # before the second: stays
    t.keep("a", stamp=stamp_of(B), coming="file")             # this exchange's keep
    _put(t, tmp_path, "a", b"bytes of a", NS_A)
    _put(t, tmp_path, "b", b"bytes of b, longer", NS_B)
    item = SyncItem("a", "file", when=B + 0.7, moved_to="b")
    doomed = swaps.redundant(t, item)
    assert sorted(asked) == [("a", B), ("b", B)]
    assert [(k.path, k.stamp) for k in doomed] == [("a", stamp_of(B))]


def _rotated(t, tmp_path) -> None:
    """a kept (at B, by an earlier change's put) and now held at b: a rotation's end."""
    _put(t, tmp_path, "a", b"bytes of a", NS_A)
    t.keep("a", stamp=stamp_of(B), coming="file")
    _put(t, tmp_path, "a", b"bytes of b, longer", NS_B)
    _put(t, tmp_path, "b", b"bytes of a", NS_A)


def test_the_bound_is_the_rows_oldest_change_when_it_held_one(tmp_path):
    """`mv a t; mv c a; mv t c`, a reconcile's put of a keeping a's bytes at B and its
    delete of c (the put of c that names a) recorded in the next second over a row first
    seen at B: the version is dropped, as it would be within one second."""
    t = MemoryTarget()
    _rotated(t, tmp_path)
    asked: list[float | None] = []
    real = t.trash_list
    t.trash_list = lambda prefix="", *, since=None: asked.append(since) or real(
        prefix, since=since)
    item = SyncItem("b", "file", when=B + 1.2, first_when=B + 0.4, moved_to="a")
    assert swaps.bound(item) == B + 0.4
    assert [(k.path, k.stamp) for k in swaps.redundant(t, item)] == [("a", stamp_of(B))]
    assert asked == [B, B]


def test_without_the_rows_first_change_the_bound_is_the_change(tmp_path):
    """first_when 0 (not known: an item built by hand): the change's own second, so the
    version kept a second before it stays; and a first_when after `when` (never from the
    journal) does not move the bound later."""
    t = MemoryTarget()
    _rotated(t, tmp_path)
    item = SyncItem("b", "file", when=B + 1.2, moved_to="a")
    assert swaps.bound(item) == B + 1.2 and swaps.redundant(t, item) == []
    later_first = SyncItem("b", "file", when=B + 0.5, first_when=B + 9, moved_to="a")
    assert swaps.bound(later_first) == B + 0.5



def test_the_bound_reaches_back_an_hour_at_most():
    """A row first seen days ago (rewritten faster than it shipped, a delete held by the
    alarm) would have each exchange's put list every version kept since."""
    old = SyncItem("b", "file", when=B, first_when=B - 3 * 86400, moved_to="a")
    assert swaps.bound(old) == B - swaps.LOOK_BACK
    recent = SyncItem("b", "file", when=B, first_when=B - 3599, moved_to="a")
    assert swaps.bound(recent) == B - 3599
