"""The metadata promises of mirrord.targets.base.Target, on every target type.

Permission bits and nanosecond mtimes are kept by put, changed by set_meta without
re-sending the body (a chmod 0644 -> 0600 must hide the file on the mirror too),
and directory modes are set by mkdir, also on a directory that exists.
Runs unchanged against memory, local, rsync (real sshd) and s3 (real SeaweedFS).
"""

from __future__ import annotations

import os

import pytest

from mirrord.errors import NotFound
from mirrord.targets.model import SyncItem
from mirrord.targets.mtime import ns_to_float

NS = 1_600_000_000_123_456_789      # not representable as a float: exactness shows
NS2 = 1_700_000_000_987_654_321


def source(tmp_path, name: str, data: bytes, mode: int, ns: int = NS) -> str:
    p = tmp_path / "src" / name.replace("/", "_")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    os.utime(p, ns=(ns, ns))
    return str(p)


def put(target, tmp_path, path: str, data: bytes, mode: int, ns: int = NS, **kw):
    local = source(tmp_path, path, data, mode, ns)
    return target.put(path, local, size=len(data), mtime=ns_to_float(ns), mtime_ns=ns, **kw)


def listed(target, path: str):
    return next(e for e in target.list() if e.path == path)


def body_identity(target, path: str):
    """Something that changes when the body is written again: the inode where there is one,
    the memory target's count of puts; None for s3 (test_s3_target counts its requests)."""
    if target.type == "local":
        return os.lstat(os.path.join(target.root, path)).st_ino
    if target.type == "rsync":   # the sshd fixture's "remote" is this machine
        return os.lstat(os.path.join(target.opts.path, path)).st_ino
    if target.type == "memory":
        return sum(1 for op, _ in target.calls if op == "put")
    return None


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755, 0o666])   # 0666: no umask (022) applies
def test_put_keeps_mode_and_exact_mtime(target, tmp_path, mode):
    assert target.features.keeps_mode
    entry = put(target, tmp_path, "m/f.bin", b"data", mode)
    assert (entry.mode, entry.mtime_ns) == (mode, NS)
    st = target.stat("m/f.bin")
    assert (st.mode, st.mtime_ns, st.size) == (mode, NS, 4)
    got = listed(target, "m/f.bin")
    if target.features.list_mtime:
        assert (got.mode, got.mtime_ns) == (mode, NS)
    else:   # s3: a listing carries no metadata
        assert got.mode is None


def test_put_mode_and_mtime_arguments_win_over_the_local_file(target, tmp_path):
    local = source(tmp_path, "arg", b"x", 0o644, NS)
    entry = target.put("arg", local, size=1, mtime=ns_to_float(NS2), mtime_ns=NS2, mode=0o600)
    st = target.stat("arg")
    assert (entry.mode, st.mode, st.mtime_ns) == (0o600, 0o600, NS2)


def test_put_without_mtime_ns_derives_it_from_mtime(target, tmp_path):
    local = source(tmp_path, "old", b"x", 0o644, 1_600_000_000_250_000_000)
    target.put("old", local, size=1, mtime=1_600_000_000.25)   # the old call still works
    st = target.stat("old")
    assert (st.mode, st.mtime_ns) == (0o644, 1_600_000_000_250_000_000)


@pytest.mark.parametrize("before,after", [(0o644, 0o600), (0o600, 0o644)])
def test_set_meta_changes_mode_and_mtime_in_place(target, tmp_path, before, after):
    put(target, tmp_path, "d/doc.pdf", b"body", before)
    identity = body_identity(target, "d/doc.pdf")
    entry = target.set_meta("d/doc.pdf", mode=after, mtime_ns=NS2)
    assert (entry.mode, entry.mtime_ns, entry.size) == (after, NS2, 4)
    st = target.stat("d/doc.pdf")
    assert (st.mode, st.mtime_ns, st.size) == (after, NS2, 4)
    assert target.read("d/doc.pdf") == b"body"
    assert body_identity(target, "d/doc.pdf") == identity


def test_set_meta_with_mode_none_changes_only_the_mtime(target, tmp_path):
    put(target, tmp_path, "t", b"1", 0o640)
    target.set_meta("t", mode=None, mtime_ns=NS2)
    st = target.stat("t")
    assert (st.mode, st.mtime_ns) == (0o640, NS2)


def test_set_meta_on_an_absent_path_raises_not_found(target):
    with pytest.raises(NotFound):
        target.set_meta("not/there", mode=0o600, mtime_ns=NS)


def test_set_meta_on_a_directory_raises_not_found(target):
    if not target.features.directories:
        return   # no directories: the absent case above covers it
    target.mkdir("adir")
    with pytest.raises(NotFound):
        target.set_meta("adir", mode=0o600, mtime_ns=NS)


def test_meta_only_item_falls_back_to_a_put_when_the_target_lost_the_file(target, tmp_path):
    local = source(tmp_path, "lost", b"lost body", 0o640, NS)
    item = SyncItem("lost/f", "file", local, 9, ns_to_float(NS), mode=0o640, mtime_ns=NS,
                    meta_only=True)
    [result] = target.sync([item])
    assert result.error is None
    assert target.read("lost/f") == b"lost body"
    st = target.stat("lost/f")
    assert (st.mode, st.mtime_ns) == (0o640, NS)


def test_meta_only_item_without_a_local_file_reports_not_found(target):
    [result] = target.sync([SyncItem("gone", "file", mode=0o600, mtime_ns=NS, meta_only=True)])
    assert isinstance(result.error, NotFound)
    assert target.stat("gone") is None


def test_meta_only_items_mix_with_puts_and_deletes_in_one_batch(target, tmp_path):
    put(target, tmp_path, "keep", b"kept", 0o644)
    put(target, tmp_path, "drop", b"x", 0o644)
    new = source(tmp_path, "new", b"new!", 0o600, NS)
    items = [
        SyncItem("keep", "file", mode=0o600, mtime_ns=NS2, meta_only=True),
        SyncItem("new", "file", new, 4, ns_to_float(NS), mode=0o600, mtime_ns=NS),
        SyncItem("drop", "absent"),
        SyncItem("missing", "file", mode=0o600, mtime_ns=NS2, meta_only=True),
    ]
    results = target.sync(items)
    errors = {r.item.path: r.error for r in results if r.error is not None}
    assert set(errors) == {"missing"} and isinstance(errors["missing"], NotFound)
    assert (target.stat("keep").mode, target.stat("keep").mtime_ns) == (0o600, NS2)
    assert target.read("keep") == b"kept"
    assert (target.stat("new").mode, target.read("new")) == (0o600, b"new!")
    assert target.stat("drop") is None


def test_mkdir_sets_the_mode_also_on_an_existing_directory(target, tmp_path):
    if not target.features.directories:
        target.mkdir("w", mode=0o750)   # a no-op, must not fail
        return
    target.mkdir("w", mode=0o750)
    assert target.stat("w").mode == 0o750
    assert listed(target, "w").mode == 0o750
    target.mkdir("w", mode=0o775)   # group-writable: the target's umask (022) must not apply
    assert target.stat("w").mode == 0o775
    target.mkdir("w", mode=0o700)
    assert target.stat("w").mode == 0o700
    # a file put below it (its own item) leaves the directory's mode alone
    put(target, tmp_path, "w/x", b"1", 0o644)
    assert target.stat("w").mode == 0o700


def test_dir_item_carries_its_mode(target):
    results = target.sync([SyncItem("p/q", "dir", mtime=ns_to_float(NS), mode=0o750,
                                    mtime_ns=NS)])
    assert results[0].error is None
    if target.features.directories:
        st = target.stat("p/q")
        assert st.is_dir and st.mode == 0o750
        assert target.stat("p").mode != 0o750   # a parent made on the way keeps the default
