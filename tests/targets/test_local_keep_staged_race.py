"""The local target's keep in put decides on the staged bytes (a review, helper-159).

A put compares what stands at its path with what it is about to install only when
their sizes and mtimes match (a re-send), and then keeps nothing when the bytes are the
same too. Compared with the source before the copy, a source rewritten in place in
between (its length kept, its mtime put back) passed for the bytes already there: the
rewrite was installed over the only copy of the old bytes, unkept, and its own put then
found the same bytes and kept nothing either. The comparison is now made with the temp
file the rename installs (LocalTrash._keep_in_put called by Staging.install)."""

from __future__ import annotations

import os

from mirrord.targets import local_stage
from mirrord.targets.local import LocalTarget
from mirrord.targets.mtime import ns_to_float
from mirrord.trash.model import OVERWRITTEN, stamp_of

NS = 1_600_000_000_123_456_789


def put(t: LocalTarget, src, stamp: str | None):
    return t.put("f", str(src), size=4096, mtime=ns_to_float(NS), mtime_ns=NS,
                 keep_stamp=stamp)


def test_a_rewrite_between_the_look_and_the_copy_is_kept(tmp_path, monkeypatch):
    t = LocalTarget("local", str(tmp_path / "mirror"), fsync=False)
    t.open()
    try:
        src = tmp_path / "src"
        src.write_bytes(b"A" * 4096)
        os.utime(src, ns=(NS, NS))
        put(t, src, None)
        real_copy = local_stage.Staging._copy

        def copy_after_rewrite(self, fd, local, *args):
            with open(local, "r+b") as fh:       # the source rewritten just before the copy
                fh.write(b"X" * 4096)
            os.utime(local, ns=(NS, NS))
            monkeypatch.setattr(local_stage.Staging, "_copy", real_copy)
            return real_copy(self, fd, local, *args)

        monkeypatch.setattr(local_stage.Staging, "_copy", copy_after_rewrite)
        put(t, src, stamp_of(1_700_000_000.0))   # a re-send of the version there
        put(t, src, stamp_of(1_700_000_001.0))   # the rewrite's own put: nothing more
        assert t.read("f") == b"X" * 4096
        [k] = t.trash_list()
        out = tmp_path / "out"
        t.trash_fetch(k, str(out))
        assert (k.why, out.read_bytes()) == (OVERWRITTEN, b"A" * 4096)
    finally:
        t.close()


def test_a_keep_that_fails_after_staging_leaves_no_temp_file_and_the_old_file(tmp_path,
                                                                               monkeypatch):
    t = LocalTarget("local", str(tmp_path / "mirror"), fsync=False)
    t.open()
    try:
        src = tmp_path / "src"
        src.write_bytes(b"A" * 4096)
        put(t, src, None)
        src.write_bytes(b"B" * 4096)

        def refuse(*_a, **_k):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(t, "keep", refuse)
        try:
            put(t, src, stamp_of(1_700_000_000.0))
        except Exception as exc:  # noqa: BLE001 - any failure; the state is what matters
            assert "No space" in str(exc) or "ENOSPC" in str(exc)
        else:
            raise AssertionError("the put went through a failed keep")
        assert t.read("f") == b"A" * 4096
        assert os.listdir(tmp_path / "mirror" / local_stage.STAGE_DIR) == []
    finally:
        t.close()
