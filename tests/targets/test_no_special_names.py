"""No name a user can give a file is special to a target, on every target type.

A user's file named like one of mirrord's temp files (`.mirrord-tmp-*`, which
the local target used to hide from its listing) must be stored, listed with
its size, mode and mtime (so reconcile sees it in sync and never re-sends it),
and deleted. Only `.mirrord/` at the root is mirrord's; a `.mirrord` below the
root is a user's directory like any other.
Runs against memory, local, rsync (real sshd) and s3 (real SeaweedFS).
"""

from __future__ import annotations

import os

import pytest

from mirrord.targets.model import SyncItem
from mirrord.targets.mtime import ns_to_float

NS = 1_600_000_000_123_456_789

USER_NAMES = [
    ".mirrord-tmp-foo.jpg",            # the local target's old temp prefix
    "sub/.mirrord-tmp-abc123",
    ".mirrord-stage-0123456789abcdef",  # the local target's beside-the-destination temp name
    "sub/.mirrord/heartbeat.json",     # `.mirrord` below the root is the user's
    ".mirrord.jpg",
    "tmp",
    "rsync-tmp/x",
]


def source(tmp_path, name: str, data: bytes, mode: int = 0o640) -> str:
    p = tmp_path / "src" / name.replace("/", "_")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    os.utime(p, ns=(NS, NS))
    return str(p)


@pytest.mark.parametrize("name", USER_NAMES)
def test_a_user_name_is_stored_listed_in_sync_and_deleted(target, tmp_path, name):
    data = b"user data " + name.encode()
    target.put(name, source(tmp_path, name, data), size=len(data), mtime=ns_to_float(NS),
               mtime_ns=NS, mode=0o640)
    listed = {e.path: e for e in target.list() if not e.is_dir}
    assert set(listed) == {name}, "the user's file must be listed, and nothing else"
    assert listed[name].size == len(data)
    # what reconcile compares: the stat (S3 HEAD) carries exactly the source's mtime and mode
    st = target.stat(name)
    assert (st.size, st.mtime_ns, st.mode) == (len(data), NS, 0o640)
    if target.features.list_mtime:
        assert (listed[name].mtime_ns, listed[name].mode) == (NS, 0o640)
    assert target.read(name) == data
    target.delete(name)
    assert target.stat(name) is None
    assert not [e for e in target.list() if not e.is_dir]


def test_user_names_go_through_a_sync_batch_and_its_deletes(target, tmp_path):
    src = tmp_path / "tree"
    names = [n for n in USER_NAMES if n.startswith("sub/") or "/" not in n]
    for name in names:
        p = src / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(name.encode())
        os.utime(p, ns=(NS, NS))
    items = [SyncItem(n, "file", str(src / n), len(n), ns_to_float(NS), source_root=str(src),
                      source_rel=n, mtime_ns=NS) for n in names]
    assert all(r.error is None for r in target.sync(items))
    assert {e.path for e in target.list() if not e.is_dir} == set(names)
    gone = [SyncItem(n, "absent", source_root=str(src), source_rel=n) for n in names]
    for name in names:
        (src / name).unlink()
    assert all(r.error is None for r in target.sync(gone))
    assert not [e for e in target.list() if not e.is_dir]


def test_mirrords_own_area_at_the_root_stays_hidden(target, tmp_path):
    target.write_meta("heartbeat.json", b"{}")
    data = b"x"
    target.put("a.txt", source(tmp_path, "a.txt", data), size=1, mtime=ns_to_float(NS),
               mtime_ns=NS)
    assert [e.path for e in target.list() if not e.is_dir] == ["a.txt"]
    assert target.read_meta("heartbeat.json") == b"{}"
