"""swaps.redundant() drops a version kept at either name of an exchange that the target holds
at that very name again: the put that followed a move in flight (`mv --exchange a c`, the
move a -> c claimed before the rest was read) kept c's bytes under its own stamp while
putting the same bytes back. Only the very bytes: the same size and mtime with other bytes
(`touch -r`) is a real version and stays (memory target; every target type:
tests/integration/test_exchange_then_proposals_keep_nothing.py)."""

from __future__ import annotations

from mirrord.targets.memory import MemoryTarget
from mirrord.targets.model import SyncItem
from mirrord.trash import swaps
from mirrord.trash.model import stamp_of
from tests.unit.test_swaps_since import _put

B = 1_700_000_100
NS_A, NS_C = 1_000_000_000_000_000_001, 2_000_000_000_000_000_002
A, C = b"bytes of a", b"bytes of c, longer"


def _exchanged(t, tmp_path, c_kept: bytes) -> None:
    """a holds C and c holds A now; c's old C kept at B (the move's), and `c_kept` (of
    A's size and mtime) kept at c a second later (the put's)."""
    _put(t, tmp_path, "c", C, NS_C)
    t.keep("c", stamp=stamp_of(B), coming="file")
    _put(t, tmp_path, "c", c_kept, NS_A)
    t.keep("c", stamp=stamp_of(B + 1), coming="file")
    _put(t, tmp_path, "c", A, NS_A)
    _put(t, tmp_path, "a", C, NS_C)


def test_a_version_kept_where_the_target_holds_it_again_is_dropped(tmp_path):
    t = MemoryTarget()
    _exchanged(t, tmp_path, A)
    item = SyncItem("a", "file", when=B + 1.2, first_when=B + 0.3, moved_to="c")
    doomed = sorted(k.stamp for k in swaps.redundant(t, item))
    assert doomed == [stamp_of(B), stamp_of(B + 1)]


def test_the_same_size_and_mtime_with_other_bytes_stays(tmp_path):
    t = MemoryTarget()
    _exchanged(t, tmp_path, b"bytes of A")   # A's size and mtime, other bytes
    item = SyncItem("a", "file", when=B + 1.2, first_when=B + 0.3, moved_to="c")
    assert [k.stamp for k in swaps.redundant(t, item)] == [stamp_of(B)]


def test_a_version_the_target_holds_nowhere_stays(tmp_path):
    """c's old bytes kept, and then a rewritten with other bytes: nothing is dropped."""
    t = MemoryTarget()
    _exchanged(t, tmp_path, A)
    _put(t, tmp_path, "a", b"other bytes", NS_C)
    _put(t, tmp_path, "c", b"more other bytes", NS_A)
    item = SyncItem("a", "file", when=B + 1.2, first_when=B + 0.3, moved_to="c")
    assert swaps.redundant(t, item) == []


def test_a_put_that_changed_while_sent_is_no_holder(tmp_path):
    """sent_whole=False (ChangedWhileSent): a's checksum may name bytes a lacks (an S3 put
    hashes before it sends), so neither what c kept nor a's own versions go on its word;
    what a kept that c holds goes."""
    t = MemoryTarget()
    _exchanged(t, tmp_path, A)                       # c: C kept at B, A kept at B + 1
    _put(t, tmp_path, "a", A, NS_A)                  # a: A now, c: A
    t.keep("a", stamp=stamp_of(B + 1), coming="file")
    _put(t, tmp_path, "a", C, NS_C)                  # a: C, its A kept at B + 1
    item = SyncItem("a", "file", when=B + 1.2, first_when=B + 0.3, moved_to="c")
    assert sorted((k.path, k.stamp) for k in swaps.redundant(t, item)) == [
        ("a", stamp_of(B + 1)), ("c", stamp_of(B)), ("c", stamp_of(B + 1))]
    assert [(k.path, k.stamp) for k in swaps.redundant(t, item, sent_whole=False)] == [
        ("a", stamp_of(B + 1))]
