"""The shipper on paths a target can never hold (Target.cannot_hold): a source with an
empty dest holding a `.mirrord` of its own, the name of the target's own area. Refused
while the source holds it (a permanent error naming it), done as nothing once it holds
nothing there, whatever the op (a delete must never reach the target's own area), and
a rename out of it sent as the new name (mirrord.ship_rules.unholdable). Found by trying
it as a user: `mkdir src/.mirrord; rmdir src/.mirrord` left a target degraded for good.
The memory and local targets, a real source tree; the three real targets through the
real daemon: tests/e2e/test_source_dot_mirrord.py."""

from __future__ import annotations

import os

import pytest

from mirrord.targets.local import LocalTarget
from tests.integration.test_shipper import mode_of, op, shipper_for, src, target  # noqa: F401

KINDS = [("put", False, False), ("mkdir", True, False), ("delete", False, False),
         ("delete", True, True), ("attr", False, False)]


def _own_area(target) -> dict:
    """What the local target holds in its own area (the memory target has none on disk)."""
    if not isinstance(target, LocalTarget):
        return {}
    root = os.path.join(target.root, ".mirrord")
    return {os.path.relpath(os.path.join(d, n), root): None
            for d, dirs, files in os.walk(root) for n in dirs + files}


@pytest.mark.parametrize("kind,is_dir,tree", KINDS)
def test_a_name_the_target_cannot_hold_is_refused_while_the_source_holds_it(
        target, src, kind, is_dir, tree):  # noqa: F811
    (src / ".mirrord" / "x").mkdir(parents=True)
    (src / ".mirrord" / "x" / "f.jpg").write_bytes(b"inside")
    before = _own_area(target)
    sh = shipper_for(target, src)
    outs = sh.run_ops(target, [op(".mirrord", kind, is_dir=is_dir, tree=tree),
                               op(".mirrord/x/f.jpg", kind, tree=tree)])
    for out in outs:
        assert out.error is not None and out.permanent, out
        assert "own area" in out.error and out.error.endswith("not mirrored there"), out.error
    assert _own_area(target) == before
    sh.shutdown()


@pytest.mark.parametrize("kind,is_dir,tree", KINDS)
def test_once_the_source_holds_nothing_there_the_op_is_done_as_nothing(
        target, src, kind, is_dir, tree):  # noqa: F811
    before = _own_area(target)
    sh = shipper_for(target, src)
    outs = sh.run_ops(target, [op(".mirrord", kind, is_dir=is_dir, tree=tree),
                               op(".mirrord/x/f.jpg", kind, tree=tree),
                               op(".mirrord", "move", src="elsewhere", is_dir=is_dir)])
    assert [(o.error, o.shipped_kind) for o in outs] == [(None, "skip")] * 3
    assert _own_area(target) == before
    sh.shutdown()


def test_a_rename_out_of_it_sends_the_new_name(target, src):  # noqa: F811
    """`mv src/.mirrord/f.jpg src/g.jpg`: nothing was ever sent at the old name, so no
    rename is asked of the target (it would be refused for good): the new name is put."""
    (src / "g.jpg").write_bytes(b"renamed out")
    st = os.stat(src / "g.jpg")
    sh = shipper_for(target, src)
    (out,) = sh.run_ops(target, [op("g.jpg", "move", src=".mirrord/f.jpg",
                                    src_shipped=(11, st.st_mtime_ns, mode_of(src / "g.jpg")))])
    assert out.error is None and out.shipped_kind == "put", out
    assert target.read("g.jpg") == b"renamed out"
    sh.shutdown()


def test_below_a_dest_it_is_a_name_like_any_other(target, src):  # noqa: F811
    (src / ".mirrord").mkdir()
    (src / ".mirrord" / "f.jpg").write_bytes(b"the source's own")
    sh = shipper_for(target, src, dest="media")
    (out,) = sh.run_ops(target, [op(".mirrord/f.jpg")])
    assert out.error is None and out.shipped_kind == "put", out
    assert target.read("media/.mirrord/f.jpg") == b"the source's own"
    sh.shutdown()
