"""keeper.prepare (mirrord/trash/keeper.py) for targets that keep by condition
(Features.keep_by_condition, issue 17): which items are marked with their stamp instead of
being kept beforehand, that their parents are still asked where directories exist, and
that the Shipper syncs the marked items it gets back. Memory targets, a real source tree."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.errors import PermanentError
from mirrord.journal import Op
from mirrord.shipper import Shipper, serial
from mirrord.targets.memory import MemoryTarget
from mirrord.targets.model import SyncItem
from mirrord.trash import keeper
from mirrord.trash.keeper import KeepPolicy
from mirrord.trash.model import OVERWRITTEN, stamp_of, trash_rel

S, T = "up", "t"
WHEN = 1_795_000_000.25
STAMP = stamp_of(WHEN)
_ids = itertools.count(1)


class ByCondition(MemoryTarget):
    """A memory target that keeps by condition: its put keeps what it replaces under the
    item's keep_stamp (as S3's conditional put does), and records what it is asked."""

    features = replace(MemoryTarget.features, keep_by_condition=True)

    def __init__(self):
        super().__init__(T)
        self.requests: list[tuple[str, str, str]] = []
        self.synced: list[SyncItem] = []
        self.refuse = False

    def keep_many(self, requests):
        self.requests.extend(requests)
        return super().keep_many(requests)

    def sync(self, items):
        self.synced.extend(items)
        return super().sync(items)

    def put(self, path, local, *, keep_stamp=None, **kw):
        """Target.put as a keep_by_condition target takes it (itemwise.sync_one passes the
        item's keep_stamp): keep what stands at `path` first, or fail without putting."""
        if keep_stamp is not None and path in self.files:
            if self.refuse:
                raise PermanentError("EACCES: trash not writable")
            self.keep(path, stamp=keep_stamp, coming="file")
        return super().put(path, local, **kw)


class WithDirs(ByCondition):
    features = replace(ByCondition.features, directories=True)


@pytest.mark.parametrize("item, marked", [
    (SyncItem("a", "file", when=WHEN), True),
    (SyncItem("a", "file", when=WHEN, meta_only=True), False),
    (SyncItem("a", "file", when=WHEN, tree=True), False),   # its tree removal is kept first
    (SyncItem("a", "dir", when=WHEN), False),
    (SyncItem("a", "absent", when=WHEN), False),
])
def test_only_plain_puts_are_marked_and_the_rest_kept_first(item, marked):
    t = ByCondition()
    items, errors = keeper.prepare(t, [item])
    assert errors == [None]
    assert items[0].keep_stamp == (STAMP if marked else None)
    assert replace(items[0], keep_stamp=None) == item
    asked = [] if marked or item.meta_only else [("a", STAMP, keeper.coming(item))]
    assert t.requests == asked


def test_a_target_without_the_feature_is_asked_as_before():
    t = MemoryTarget(T)
    item = SyncItem("a", "file", when=WHEN)
    items, errors = keeper.prepare(t, [item])
    assert items == [item] and items[0].keep_stamp is None and errors == [None]


def test_a_marked_items_parents_are_still_asked_where_directories_exist():
    t = WithDirs()
    items, errors = keeper.prepare(t, [SyncItem("d/e/f", "file", when=WHEN)])
    assert errors == [None] and items[0].keep_stamp == STAMP
    assert t.requests == [("d", STAMP, "dir"), ("d/e", STAMP, "dir")]


def _ship(t, root: Path, path: str):
    shipper = Shipper({T: t}, [SourceConfig(S, root, (T,))], {T: 1}, executor=serial,
                      keep={T: KeepPolicy(3600.0)})
    (out,) = shipper.run_ops(t, [Op(next(_ids), 1, T, S, path, "put", None, False, False, 0,
                                    WHEN)])
    return out


def test_the_shipper_syncs_the_marked_items(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"new")
    (root / "b.jpg").write_bytes(b"bee")
    t = ByCondition()
    seed = tmp_path / "seed"
    seed.write_bytes(b"old")
    t.put("a.jpg", str(seed), size=3, mtime=1.0)
    assert _ship(t, root, "a.jpg").error is None
    assert _ship(t, root, "b.jpg").error is None
    assert [(i.path, i.keep_stamp) for i in t.synced] == [("a.jpg", STAMP), ("b.jpg", STAMP)]
    assert t.requests == [], "nothing asked before the puts"
    assert list(t.trash) == [trash_rel(STAMP, OVERWRITTEN, "a.jpg")], "b.jpg was new"
    assert t.trash[trash_rel(STAMP, OVERWRITTEN, "a.jpg")][0] == b"old"
    assert t.files["a.jpg"][0] == b"new"


def test_a_put_whose_own_keep_fails_is_the_items_error(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"new")
    t = ByCondition()
    seed = tmp_path / "seed"
    seed.write_bytes(b"old")
    t.put("a.jpg", str(seed), size=3, mtime=1.0)
    t.refuse = True
    out = _ship(t, root, "a.jpg")
    assert out.error and "EACCES" in out.error and out.permanent
    assert t.files["a.jpg"][0] == b"old" and not t.trash
