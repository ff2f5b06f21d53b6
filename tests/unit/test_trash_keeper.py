"""The keep-before-delete rule (mirrord.trash.keeper) through the Shipper on a memory
target, with a real source tree: what is kept before a delete, an overwrite, a directory
removal and a move; a failed keep stops the change; the stamp is the row's event time; the
[target:NAME] keep_deleted keys."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from mirrord.config import SourceConfig, load
from mirrord.errors import ConfigError, PermanentError, RetryableError
from mirrord.journal import Op
from mirrord.shipper import Shipper, serial
from mirrord.targets.base import Target
from mirrord.targets.memory import MemoryTarget
from mirrord.targets.model import SyncItem
from mirrord.trash import keeper
from mirrord.trash.keeper import KeepPolicy
from mirrord.trash.model import DELETED, DIR_REMOVED, OVERWRITTEN, stamp_of, trash_rel

S, T = "up", "t"
WHEN = 1_795_000_000.25
_ids = itertools.count(1)


class Recording(MemoryTarget):
    """A memory target that records each keep_many batch and can refuse to keep."""

    def __init__(self):
        super().__init__(T)
        self.requests: list[list[tuple[str, str, str]]] = []
        self.keep_error: Exception | None = None

    def keep_many(self, requests):
        self.requests.append(list(requests))
        if self.keep_error is not None:
            return [self.keep_error for _ in requests]
        return super().keep_many(requests)


class NoKeep(MemoryTarget):
    """A target type that does not implement keep (the base class's)."""

    keep = Target.keep


def op(path: str, kind: str = "put", *, is_dir: bool = False, tree: bool = False,
       when: float = WHEN, src: str | None = None, shipped=None, src_shipped=None) -> Op:
    return Op(next(_ids), 1, T, S, path, kind, src, is_dir, tree, 0, when,
              src_shipped=src_shipped, shipped=shipped)


def seed(target: MemoryTarget, path: str, data: bytes, tmp_path: Path) -> None:
    f = tmp_path / "seed"
    f.write_bytes(data)
    target.put(path, str(f), size=len(data), mtime=1.0)


def shipper(target, root: Path, *, keep: bool = True) -> Shipper:
    policy = {T: KeepPolicy(3600.0)} if keep else None
    return Shipper({T: target}, [SourceConfig(S, root, (T,))], {T: 1}, executor=serial,
                   keep=policy)


@pytest.fixture
def src(tmp_path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    return root


# ------------------------------------------------------------------ coming()


@pytest.mark.parametrize("item, expected", [
    (SyncItem("a", "file"), "file"),
    (SyncItem("a", "file", meta_only=True), None),
    (SyncItem("a", "dir"), "dir"),
    (SyncItem("a", "absent"), "absent"),
    (SyncItem("a", "absent", tree=True), "absent"),
    (SyncItem("a", "file", tree=True), "file"),
    (SyncItem("a", "dir", tree=True), "absent"),   # the tree removal destroys what is below
])
def test_what_each_item_becomes(item, expected):
    assert keeper.coming(item) == expected


# ------------------------------------------------------------------ through the shipper


def test_a_delete_keeps_the_file_first(src, tmp_path):
    t = Recording()
    seed(t, "a.jpg", b"old", tmp_path)
    (out,) = shipper(t, src).run_ops(t, [op("a.jpg", "delete")])
    assert out.error is None and out.shipped_kind == "delete"
    assert "a.jpg" not in t.files
    assert t.trash[trash_rel(stamp_of(WHEN), DELETED, "a.jpg")][0] == b"old"
    assert t.requests == [[("a.jpg", stamp_of(WHEN), "absent")]]


def test_an_overwrite_keeps_the_old_bytes(src, tmp_path):
    t = Recording()
    seed(t, "a.jpg", b"old", tmp_path)
    (src / "a.jpg").write_bytes(b"new")
    (out,) = shipper(t, src).run_ops(t, [op("a.jpg")])
    assert out.error is None and t.files["a.jpg"][0] == b"new"
    assert t.trash[trash_rel(stamp_of(WHEN), OVERWRITTEN, "a.jpg")][0] == b"old"


def test_a_directory_removal_keeps_every_file_below(src, tmp_path):
    t = Recording()
    for p in ("d/x", "d/e/y"):
        seed(t, p, p.encode(), tmp_path)
    (out,) = shipper(t, src).run_ops(t, [op("d", "delete", is_dir=True, tree=True)])
    assert out.error is None and not t.files
    assert {k: v[0] for k, v in t.trash.items()} == {
        trash_rel(stamp_of(WHEN), DIR_REMOVED, "d/x"): b"d/x",
        trash_rel(stamp_of(WHEN), DIR_REMOVED, "d/e/y"): b"d/e/y"}


def test_a_failed_keep_leaves_the_file_and_the_op_is_retried(src, tmp_path):
    t = Recording()
    seed(t, "a.jpg", b"old", tmp_path)
    seed(t, "b.jpg", b"bee", tmp_path)
    t.keep_error = RetryableError("ENOSPC: trash full")
    outs = shipper(t, src).run_ops(t, [op("a.jpg", "delete"), op("b.jpg", "delete")])
    assert all(o.error and "ENOSPC" in o.error and not o.permanent for o in outs)
    assert t.files["a.jpg"][0] == b"old" and t.files["b.jpg"][0] == b"bee" and not t.trash
    assert ("delete", "a.jpg") not in t.calls


def test_only_the_item_whose_keep_failed_is_held_back(src, tmp_path):
    class OneBad(Recording):
        def keep(self, path, *, stamp, coming):
            if path == "a.jpg":
                raise PermanentError("EACCES: trash not writable")
            return super().keep(path, stamp=stamp, coming=coming)

    t = OneBad()
    seed(t, "a.jpg", b"old", tmp_path)
    seed(t, "b.jpg", b"bee", tmp_path)
    a, b = shipper(t, src).run_ops(t, [op("a.jpg", "delete"), op("b.jpg", "delete")])
    assert a.error and "EACCES" in a.error and a.permanent
    assert b.error is None and b.shipped_kind == "delete"
    assert t.files["a.jpg"][0] == b"old" and "b.jpg" not in t.files


def test_a_keep_that_raises_fails_its_items_and_deletes_nothing(src, tmp_path):
    class Broken(Recording):
        def keep_many(self, requests):
            raise RuntimeError("bug in a target")

    t = Broken()
    seed(t, "a.jpg", b"old", tmp_path)
    (out,) = shipper(t, src).run_ops(t, [op("a.jpg", "delete")])
    assert out.error and "bug in a target" in out.error and t.files["a.jpg"][0] == b"old"


def test_a_retried_op_reuses_the_same_stamp(src, tmp_path):
    class DeleteFailsOnce(Recording):
        failed = False

        def keep(self, path, *, stamp, coming):   # an overwrite-style keep: the file stays,
            return super().keep(path, stamp=stamp, coming="file")   # so the delete has work

        def delete(self, path, *, tree=False):
            if not self.failed:
                self.failed = True
                raise RetryableError("ECONNRESET")
            super().delete(path, tree=tree)

    t = DeleteFailsOnce()
    seed(t, "a.jpg", b"old", tmp_path)
    ship = shipper(t, src)
    row = op("a.jpg", "delete")
    (first,) = ship.run_ops(t, [row])
    assert first.error is not None and t.files["a.jpg"][0] == b"old"
    retry = Op(row.id, row.seq, T, S, "a.jpg", "delete", None, False, False, 1, row.event_time)
    (second,) = ship.run_ops(t, [retry])
    assert second.error is None and "a.jpg" not in t.files
    assert t.requests[0] == t.requests[1] == [("a.jpg", stamp_of(WHEN), "absent")]
    assert list(t.trash) == [trash_rel(stamp_of(WHEN), OVERWRITTEN, "a.jpg")]   # kept once


def test_metadata_only_changes_and_skips_need_no_keep(src, tmp_path):
    t = Recording()
    (src / "a.jpg").write_bytes(b"same")
    seed(t, "a.jpg", b"same", tmp_path)
    st = (src / "a.jpg").stat()
    (src / "a.jpg").chmod(0o600)
    (out,) = shipper(t, src).run_ops(t, [op("a.jpg", "attr", shipped=(4, st.st_mtime_ns, 0o644))])
    assert out.error is None and out.shipped_kind == "meta"
    assert t.requests == []


def test_with_keep_deleted_off_nothing_is_kept(src, tmp_path):
    t = Recording()
    seed(t, "a.jpg", b"old", tmp_path)
    (out,) = shipper(t, src, keep=False).run_ops(t, [op("a.jpg", "delete")])
    assert out.error is None and t.requests == [] and not t.trash


def test_a_move_keeps_what_it_replaces(src, tmp_path):
    t = Recording()
    seed(t, "a.jpg", b"moved", tmp_path)
    seed(t, "b.jpg", b"victim", tmp_path)
    (src / "b.jpg").write_bytes(b"moved")
    st = (src / "b.jpg").stat()
    row = op("b.jpg", "move", src="a.jpg", src_shipped=(5, st.st_mtime_ns, st.st_mode & 0o777))
    (out,) = shipper(t, src).run_ops(t, [row])
    assert out.error is None and out.shipped_kind == "move"
    assert t.files["b.jpg"][0] == b"moved"
    assert t.trash[trash_rel(stamp_of(WHEN), OVERWRITTEN, "b.jpg")][0] == b"victim"


def test_a_move_whose_keep_fails_is_not_made(src, tmp_path):
    class NoSpace(Recording):
        def keep(self, path, *, stamp, coming):
            raise RetryableError("ENOSPC: trash full")

    t = NoSpace()
    seed(t, "a.jpg", b"moved", tmp_path)
    seed(t, "b.jpg", b"victim", tmp_path)
    (src / "b.jpg").write_bytes(b"moved")
    st = (src / "b.jpg").stat()
    row = op("b.jpg", "move", src="a.jpg", src_shipped=(5, st.st_mtime_ns, st.st_mode & 0o777))
    (out,) = shipper(t, src).run_ops(t, [row])
    assert out.error and "ENOSPC" in out.error
    assert t.files["b.jpg"][0] == b"victim" and t.files["a.jpg"][0] == b"moved"


def test_a_row_without_event_time_still_keeps(src, tmp_path):
    t = Recording()
    seed(t, "a.jpg", b"old", tmp_path)
    before = time.time()
    (out,) = shipper(t, src).run_ops(t, [op("a.jpg", "delete", when=0.0)])
    assert out.error is None
    (kept,) = t.trash_list()
    assert kept.when >= before - 1e-6


# ------------------------------------------------------------------ policies and config


def ini(tmp_path: Path, target_keys: str, ttype: str = "local") -> Path:
    (tmp_path / "s").mkdir(exist_ok=True)
    p = tmp_path / "m.ini"
    p.write_text(f"[source:up]\npath = {tmp_path / 's'}\ntargets = t\n\n"
                 f"[target:t]\ntype = {ttype}\npath = {tmp_path / 'm'}\n{target_keys}")
    return p


def test_keep_deleted_is_off_by_default(tmp_path):
    t = load(ini(tmp_path, "")).targets["t"]
    assert t.keep_deleted == 0 and KeepPolicy.of(t) is None


@pytest.mark.parametrize("text, window, cap, percent", [
    ("keep_deleted = 7d\n", 7 * 86400.0, None, 20.0),
    ("keep_deleted = 12h\nkeep_deleted_max = 50G\n", 12 * 3600.0, 50 << 30, None),
    ("keep_deleted = 1h\nkeep_deleted_max = 5%\n", 3600.0, None, 5.0),
    ("keep_deleted = off\n", 0.0, None, 20.0),
    ("keep_deleted = 0\n", 0.0, None, 20.0),
])
def test_keep_keys_are_read(tmp_path, text, window, cap, percent):
    t = load(ini(tmp_path, text)).targets["t"]
    assert (t.keep_deleted, t.keep_deleted_max, t.keep_deleted_max_percent) == (window, cap, percent)


@pytest.mark.parametrize("text, key", [
    ("keep_deleted = 7 days\n", "keep_deleted"),
    ("keep_deleted = 7d\nkeep_deleted_max = 120%\n", "keep_deleted_max"),
    ("keep_deleted = 7d\nkeep_deleted_max = lots\n", "keep_deleted_max"),
    ("keep_deleted = 7d\nkeep_deleted_max = 0\n", "keep_deleted_max"),
])
def test_a_bad_keep_key_is_one_clear_problem(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load(ini(tmp_path, text))
    (problem,) = err.value.problems
    assert (problem.section, problem.key) == ("target:t", key)
    assert problem.file == str(tmp_path / "m.ini")


def test_policies_name_the_targets_that_keep(tmp_path):
    cfg = load(ini(tmp_path, "keep_deleted = 2d\nkeep_deleted_max = 1G\n"))
    assert keeper.policies(cfg, {"t": MemoryTarget("t")}) == {"t": KeepPolicy(2 * 86400.0, 1 << 30, None)}
    off = load(ini(tmp_path, ""))
    assert keeper.policies(off, {"t": MemoryTarget("t")}) == {}


def test_a_target_that_cannot_keep_is_a_config_error_naming_the_key(tmp_path):
    cfg = load(ini(tmp_path, "keep_deleted = 2d\n"))
    with pytest.raises(ConfigError) as err:
        keeper.policies(cfg, {"t": NoKeep("t")})
    (problem,) = err.value.problems
    assert (problem.section, problem.key) == ("target:t", "keep_deleted")


def test_the_cap_is_a_size_or_a_share_of_what_is_mirrored():
    assert KeepPolicy(60.0, 1000, None).cap(10**9) == 1000
    assert KeepPolicy(60.0, None, 20.0).cap(1000) == 200
    assert KeepPolicy(60.0, None, 20.0).cap(0) is None   # unknown: never "purge everything"
    assert KeepPolicy(60.0, None, None).cap(1000) is None


def _local_holding(tmp_path, data: bytes):
    """(an open LocalTarget, its source file, that file's stat) with `data` put at a.jpg."""
    from mirrord.targets.local import LocalTarget

    t = LocalTarget("t", tmp_path / "mirror", fsync=False)
    t.open()
    f = tmp_path / "v"
    f.write_bytes(data)
    st = f.stat()
    t.put("a.jpg", str(f), size=st.st_size, mtime=st.st_mtime, mtime_ns=st.st_mtime_ns)
    return t, f, st


def _item(f, st, *, ns_more: int = 0, when: float = 1_700_000_000.0) -> SyncItem:
    return SyncItem("a.jpg", "file", local=str(f), size=st.st_size, mtime=st.st_mtime,
                    mtime_ns=st.st_mtime_ns + ns_more, when=when)


def test_a_put_of_the_version_the_target_holds_keeps_nothing(tmp_path):
    """A pass that listed the target while a put was in flight queues the same version
    again; on a target with a cheap stat (local) the second put destroys nothing, so the
    trash gets no copy of the new version as 'overwritten'. Nor does the same bytes under
    another mtime (a touch seen live as a write kept a duplicate: a trial, helper-161).
    Other bytes of that size, under another mtime, are kept."""
    t, f, st = _local_holding(tmp_path, b"version two")
    assert keeper.keep_items(t, [_item(f, st)]) == [None]
    assert list(t.trash_list()) == []
    assert keeper.keep_items(t, [_item(f, st, ns_more=1, when=1_700_000_001.0)]) == [None]
    assert list(t.trash_list()) == []
    f.write_bytes(b"VERSION TWO")
    assert keeper.keep_items(t, [_item(f, st, ns_more=2, when=1_700_000_002.0)]) == [None]
    assert [k.why for k in t.trash_list()] == ["overwritten"]


def test_other_bytes_under_the_version_the_target_holds_are_kept(tmp_path):
    """The keeper's "holds already" test compares the bytes too (Target.checksum against
    the source's SHA-256): a file rewritten in place with its size kept and its mtime put
    back replaces other bytes, which are kept (a review, helper-155)."""
    t, f, st = _local_holding(tmp_path, b"clean data 01\n")
    f.write_bytes(b"ENCRYPTED-01\n\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert keeper.keep_items(t, [_item(f, st)]) == [None]
    [k] = t.trash_list()
    out = tmp_path / "out"
    t.trash_fetch(k, str(out))
    assert (k.why, out.read_bytes()) == ("overwritten", b"clean data 01\n")
