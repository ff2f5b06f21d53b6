"""The rsync target after the mirror host's root was removed and made again, empty, under
an open target (mirrord/targets/rsync/batch.py, own_area).

rsync stages into `.mirrord/rsync-tmp` (--temp-dir), made at open(). With the root made
again it was gone, and every transfer failed "The temp-dir does not exist" for good:
only a heartbeat write made it again, and none is written to a mirror taken for wiped
(mirrord.mirror_wiped). The directory is made again, inside the root (own_area never
makes the root itself), and the group sent once more.
"""

from __future__ import annotations

import os
import shutil

import pytest

from mirrord.targets.model import SyncItem
from tests.targets.conftest import make_rsync

MTIME = 1_600_000_000.0


@pytest.fixture
def host(sshd):
    t = make_rsync(sshd)
    t.open()
    yield t
    t.close()


def item(tmp_path, rel: str) -> SyncItem:
    local = tmp_path / rel.replace("/", "_")
    local.write_bytes(rel.encode())
    os.utime(local, (MTIME, MTIME))
    return SyncItem(rel, "file", str(local), len(rel), MTIME)


def test_a_root_made_again_empty_takes_files_again(host, tmp_path):
    root = os.fsdecode(host.root)
    assert [r.error for r in host.sync([item(tmp_path, "a.jpg")])] == [None]
    shutil.rmtree(root)
    os.mkdir(root)
    results = host.sync([item(tmp_path, "b.jpg"), item(tmp_path, "d/c.jpg")])
    assert [r.error for r in results] == [None, None]
    assert {e.path for e in host.list() if not e.is_dir} == {"b.jpg", "d/c.jpg"}

