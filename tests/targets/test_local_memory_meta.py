"""Metadata edge cases only the local and memory targets have: symlinks planted in a
local mirror, and the memory fake's `files` values that other tests unpack."""

from __future__ import annotations

import os

import pytest

from mirrord.errors import NotFound
from mirrord.targets.local import LocalTarget
from mirrord.targets.memory import MemoryTarget

NS = 1_600_000_000_123_456_789


@pytest.fixture
def local(tmp_path):
    t = LocalTarget("local", tmp_path / "mirror", fsync=False)
    t.open()
    return t


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    (d / "sub").mkdir(parents=True)
    (d / "f").write_bytes(b"secret")
    os.chmod(d / "f", 0o600)
    return d


def test_set_meta_never_follows_a_symlink_at_the_path(local, outside):
    os.symlink(outside / "f", os.path.join(local.root, "flink"))
    with pytest.raises(NotFound):   # not a file here: the caller sends the file instead
        local.set_meta("flink", mode=0o644, mtime_ns=NS)
    assert os.lstat(outside / "f").st_mode & 0o777 == 0o600


def test_set_meta_never_reaches_through_a_parent_symlinked_outside_the_root(local, outside):
    """NotFound, so the shipper sends the file whole and the put replaces the link
    (tests/targets/test_set_meta_symlinked_parent.py); never the outside file's mode."""
    os.symlink(outside, os.path.join(local.root, "dlink"))
    with pytest.raises(NotFound):
        local.set_meta("dlink/f", mode=0o644, mtime_ns=NS)
    assert os.lstat(outside / "f").st_mode & 0o777 == 0o600


def test_put_is_exact_to_the_nanosecond_through_a_float_free_path(local, tmp_path):
    src = tmp_path / "s"
    src.write_bytes(b"x")
    os.utime(src, ns=(NS, NS))
    local.put("p", str(src), size=1, mtime=os.stat(src).st_mtime)   # the old call: float only
    assert os.lstat(os.path.join(local.root, "p")).st_mtime_ns == NS


def test_memory_values_unpack_as_data_and_mtime(tmp_path):
    t = MemoryTarget()
    src = tmp_path / "s"
    src.write_bytes(b"abc")
    os.chmod(src, 0o640)
    t.put("a", str(src), size=3, mtime=NS / 1e9, mtime_ns=NS)
    data, mtime = t.files["a"]
    assert (data, mtime, t.files["a"].mtime_ns, t.files["a"].mode) == (b"abc", NS / 1e9, NS, 0o640)
    t.files["b"] = (b"plain", 1_600_000_000.25)   # as tests poke it in
    st = t.stat("b")
    assert (st.mode, st.mtime_ns) == (None, 1_600_000_000_250_000_000)
