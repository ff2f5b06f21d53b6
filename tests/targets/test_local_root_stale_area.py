"""A `.mirrord/` an earlier open left in a bare mount point does not open the way for the
local target (mirrord/targets/root_check.py, RootIdentity's witness).

Found by a breaker: a daemon started while the mirror's mount was missing refused its
changes, but its open made `.mirrord/` in the mount point. After the mirror was mounted
and the daemon restarted, an unmount was no longer seen: the bare mount point held a
`.mirrord/`, which was all the check asked of a root in the opened one's place, and new
files went there. Now only this open's witness (`.mirrord/open-<token>`) counts, and an
open that finds the root empty while paths shipped to it are recorded keeps none there.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mirrord.errors import RetryableError
from mirrord.targets.model import SyncItem
from tests.targets.conftest import make_local

MTIME = 1_600_000_000.0


def item(tmp_path: Path, rel: str) -> SyncItem:
    local = tmp_path / rel.replace("/", "_")
    local.write_bytes(rel.encode())
    os.utime(local, (MTIME, MTIME))
    return SyncItem(rel, "file", str(local), len(rel), MTIME)


def test_a_mirrord_an_earlier_open_left_in_the_mount_point_does_not_open_the_way(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    root = str(tmp_path / "target")
    os.makedirs(root, exist_ok=True)
    first = make_local(tmp_path)          # boot 1: the mount failed, paths shipped recorded
    first.open()
    assert first.found_empty
    first.expect_mirror("shipped")
    assert isinstance(first.sync([item(src, "x.jpg")])[0].error, RetryableError)
    first.close()
    assert not [n for n in os.listdir(os.path.join(root, ".mirrord")) if n.startswith("open-")]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "mirror", root], check=True)
    try:                                  # the mirror mounted, the daemon started again
        Path(root, "a.jpg").write_bytes(b"m")
        os.makedirs(os.path.join(root, ".mirrord"))
        Path(root, ".mirrord", "heartbeat.json").write_bytes(b"{}")
        second = make_local(tmp_path)
        second.open()
        assert not second.found_empty
        assert second.sync([item(src, "b.jpg")])[0].error is None
    finally:
        subprocess.run(["umount", "-l", root], check=False)
    result = second.sync([item(src, "c.jpg")])[0]   # unmounted again: the stale .mirrord/
    second.close()
    assert isinstance(result.error, RetryableError), sorted(os.listdir(root))
    assert not os.path.exists(os.path.join(root, "c.jpg"))
