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
