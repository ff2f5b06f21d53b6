"""The shipper's metadata side on the in-memory and local targets with a real source tree:
'attr' ops (mode / mtime only) become meta-only items or nothing at all, SyncItems carry
the exact mode and mtime, Outcomes report the mode shipped, directories carry their mode,
moves re-send a file whose mode changed, and an empty directory renamed before its old
name reached the target is created at its new name."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.journal import Op
from mirrord.shipper import Shipper
from mirrord.targets.local import LocalTarget
from mirrord.targets.memory import MemoryTarget
from mirrord.targets.model import Features
from tests.fakes import memory_or_local_target

S, T = "up", "t"
_ids = iter(range(1, 1_000_000))


class Recording(MemoryTarget):
    """The memory target, remembering every SyncItem it was handed."""

    def __init__(self, name: str = T, *, keeps_mode: bool = True):
        super().__init__(name)
        self.features = Features(server_side_move=True, directories=False, batch_size=16,
                                 keeps_mode=keeps_mode)
        self.items = []

    def sync(self, items):
        self.items.extend(items)
        return super().sync(items)


@pytest.fixture
def src(tmp_path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    return root


@pytest.fixture(params=["memory", "local"])
def target(request, tmp_path):
    return memory_or_local_target(request.param, T, tmp_path)


def op(path: str, kind: str = "put", *, src=None, is_dir=False, src_shipped=None, shipped=None) -> Op:
    return Op(next(_ids), 1, T, S, path, kind, src, is_dir, False, 0, time.time(), src_shipped,
              shipped)


def run(target, root: Path, *ops: Op):
    sh = Shipper({T: target}, [SourceConfig(S, root, (T,))], {T: 1})
    try:
        return sh.run_ops(target, list(ops))
    finally:
        sh.shutdown()


def meta(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)


def puts(target: MemoryTarget, path: str) -> int:
    return target.calls.count(("put", path))


# ------------------------------------------------------------------ what is sent


def test_items_carry_the_exact_mode_and_mtime_and_outcomes_the_mode(src):
    (src / "f").write_bytes(b"abc")
    os.chmod(src / "f", 0o640)
    os.utime(src / "f", ns=(1, 1_600_000_000_123_456_789))
    (src / "d").mkdir()
    os.chmod(src / "d", 0o2750)
    target = Recording()
    out_f, out_d = run(target, src, op("f"), op("d", "mkdir", is_dir=True))
    item_f, item_d = target.items
    assert (item_f.mode, item_f.mtime_ns, item_f.meta_only) == (0o640, 1_600_000_000_123_456_789, False)
    assert (item_d.kind, item_d.mode) == ("dir", 0o2750)
    assert (out_f.shipped_kind, out_f.mode) == ("put", 0o640)
    assert (out_d.shipped_kind, out_d.mode) == ("mkdir", 0o2750)


def test_outcomes_carry_no_mode_for_a_target_that_does_not_keep_it(src):
    (src / "f").write_bytes(b"abc")
    (out,) = run(Recording(keeps_mode=False), src, op("f"))
    assert out.shipped_kind == "put" and out.mode is None


# ------------------------------------------------------------------ attr ops


def test_an_attr_op_after_a_chmod_is_a_meta_only_item(src):
    (src / "f").write_bytes(b"body")
    size, mtime_ns, _mode = meta(src / "f")
    os.chmod(src / "f", 0o600)
    target = Recording()
    (out,) = run(target, src, op("f", "attr", shipped=(size, mtime_ns, 0o644)))
    (item,) = target.items
    assert item.meta_only and (item.kind, item.mode, item.mtime_ns) == ("file", 0o600, mtime_ns)
    assert out.error is None and (out.shipped_kind, out.mode, out.mtime_ns) == ("meta", 0o600, mtime_ns)


def test_an_attr_op_after_a_utime_is_a_meta_only_item(src):
    (src / "f").write_bytes(b"body")
    size, mtime_ns, mode = meta(src / "f")
    target = Recording()
    os.utime(src / "f", ns=(1, mtime_ns - 5_000_000_000))
    (out,) = run(target, src, op("f", "attr", shipped=(size, mtime_ns, mode)))
    assert target.items[0].meta_only and out.mtime_ns == mtime_ns - 5_000_000_000


def test_an_attr_op_on_the_memory_target_does_not_resend_the_body(src, tmp_path):
    """Needs the targets' meta_only handling (Target.set_meta): no put for a chmod."""
    (src / "f").write_bytes(b"body")
    target = MemoryTarget(T)
    (first,) = run(target, src, op("f"))
    assert puts(target, "f") == 1
    os.chmod(src / "f", 0o600)
    (out,) = run(target, src, op("f", "attr", shipped=(first.size, first.mtime_ns, first.mode)))
    assert out.error is None and out.shipped_kind == "meta"
    assert puts(target, "f") == 1            # the body was not sent again
    assert target.read("f") == b"body"


def test_an_attr_op_with_nothing_changed_is_skipped(src):
    (src / "f").write_bytes(b"body")
    os.link(src / "f", src / "hard")          # the link count changed: IN_ATTRIB, nothing to ship
    target = Recording()
    (out,) = run(target, src, op("f", "attr", shipped=meta(src / "f")))
    assert out.error is None and out.shipped_kind == "skip"
    assert target.items == [] and target.calls == []


def test_an_attr_op_on_a_target_without_modes_ignores_a_chmod(src):
    (src / "f").write_bytes(b"body")
    size, mtime_ns, _mode = meta(src / "f")
    os.chmod(src / "f", 0o600)
    target = Recording(keeps_mode=False)
    (out,) = run(target, src, op("f", "attr", shipped=(size, mtime_ns, None)))
    assert out.shipped_kind == "skip" and target.items == []


@pytest.mark.parametrize("shipped", [None, "other size"])
def test_an_attr_op_is_a_full_put_without_a_matching_shipped_row(src, shipped):
    (src / "f").write_bytes(b"body")
    size, mtime_ns, mode = meta(src / "f")
    row = None if shipped is None else (size + 1, mtime_ns, mode)
    target = Recording()
    (out,) = run(target, src, op("f", "attr", shipped=row))
    (item,) = target.items
    assert not item.meta_only and out.shipped_kind == "put"
    assert target.read("f") == b"body" and puts(target, "f") == 1


def test_an_attr_op_on_a_directory_makes_it_again_with_its_mode(src):
    (src / "d").mkdir()
    os.chmod(src / "d", 0o700)
    target = Recording()
    (out,) = run(target, src, op("d", "attr", shipped=None))
    (item,) = target.items
    assert (item.kind, item.mode, item.meta_only) == ("dir", 0o700, False)
    assert (out.shipped_kind, out.is_dir, out.mode) == ("mkdir", True, 0o700)


def test_an_attr_op_on_an_absent_path_deletes_it(src, tmp_path):
    target = Recording()
    (tmp_path / "seed").write_bytes(b"x")
    target.put("gone", str(tmp_path / "seed"), size=1, mtime=1.0)
    (out,) = run(target, src, op("gone", "attr", shipped=(1, 1, 0o644)))
    assert out.shipped_kind == "delete" and target.read("gone") is None


def test_a_chmod_reaches_a_local_target(src, tmp_path):
    """End to end on a real directory: the mirror's file ends 0600, body sent once."""
    target = LocalTarget(T, tmp_path / "mirror", fsync=False)
    target.open()
    (src / "f").write_bytes(b"body")
    os.chmod(src / "f", 0o644)
    (first,) = run(target, src, op("f"))
    os.chmod(src / "f", 0o600)
    (out,) = run(target, src, op("f", "attr", shipped=(first.size, first.mtime_ns, first.mode)))
    assert out.error is None
    assert stat.S_IMODE(os.stat(tmp_path / "mirror" / "f").st_mode) == 0o600
    assert os.stat(tmp_path / "mirror" / "f").st_mtime_ns == os.stat(src / "f").st_mtime_ns


# ------------------------------------------------------------------ moves


def test_a_move_of_a_file_whose_mode_changed_is_sent(target, src, tmp_path):
    (tmp_path / "seed").write_bytes(b"content")
    target.put("a", str(tmp_path / "seed"), size=7, mtime=1.0)
    (src / "b").write_bytes(b"content")
    os.chmod(src / "b", 0o600)
    size, mtime_ns, _mode = meta(src / "b")
    (out,) = run(target, src, op("b", "move", src="a", src_shipped=(size, mtime_ns, 0o644)))
    assert out.error is None and (out.shipped_kind, out.mode) == ("put", 0o600)
    assert target.read("b") == b"content"


def test_an_empty_directory_renamed_before_it_reached_the_target_is_created(src, tmp_path):
    target = LocalTarget(T, tmp_path / "mirror", fsync=False)
    target.open()
    (src / "new").mkdir()                     # "old" was never sent: mkdir old; mv old new
    (out,) = run(target, src, op("new", "move", src="old", is_dir=True))
    assert out.error is None and out.shipped_kind == "mkdir" and out.is_dir and out.rescan
    assert (tmp_path / "mirror" / "new").is_dir()
    assert not (tmp_path / "mirror" / "old").exists()


def test_a_directory_created_at_dst_after_a_lost_move_keeps_its_mode(src, tmp_path):
    """Needs the local target to honour SyncItem.mode for directories."""
    target = LocalTarget(T, tmp_path / "mirror", fsync=False)
    target.open()
    (src / "new").mkdir()
    os.chmod(src / "new", 0o2770)
    (out,) = run(target, src, op("new", "move", src="old", is_dir=True))
    assert out.error is None and out.mode == 0o2770
    assert stat.S_IMODE(os.stat(tmp_path / "mirror" / "new").st_mode) == 0o2770
