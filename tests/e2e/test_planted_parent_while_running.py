"""While the daemon runs, something replaces a directory of the mirror (on the local
target's root and on the mirror host) by a symlink to a directory outside, or by a plain
file; then a file is written below that directory at the source. The put must land inside
the root, nothing outside may change, the row must drain and every target be exact.

Both shapes hold (a breaker's check of today's descriptor walk and rsync retry, kept as a
regression test): `site` replaced by a symlink (the local walk replaces it; rsync's
receiver, sent the implied parent directory, replaces it too) and `site` replaced by a
regular file (the same, with --force). Through put() without a source tree the rsync
target does not clear a file in the way: tests/targets/test_file_where_a_put_parent_goes.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_exact_stream import env, start  # noqa: F401 - env: the fixture (both watchers)
from tests.reliability.conftest import Env, poll


def roots(env: Env) -> list[Path]:
    """The on-disk roots of the local target and the mirror host (both on this machine)."""
    return [Path(os.fsdecode(env.targets[name].root)) for name in ("local", "host")]


@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_a_put_below_a_directory_replaced_on_the_mirror_lands_and_drains(env, tmp_path,
                                                                         planted):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"must stay")
    (env.src / "site").mkdir(parents=True)
    (env.src / "site" / "old.txt").write_bytes(b"old")
    start(env)
    poll(env.drained, timeout=120, what="the first send drained")
    for root in roots(env):
        poll(lambda root=root: (root / "site" / "old.txt").exists(), timeout=60,
             what=f"site/old.txt on {root}")
        shutil.rmtree(root / "site")
        if planted == "symlink":
            os.symlink(outside, root / "site")
        else:
            (root / "site").write_bytes(b"in the way")
    (env.src / "site" / "victim").write_bytes(b"from the source")
    poll(env.drained, timeout=120, what="the backlog drained")
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_bytes() == b"must stay"
    for root in roots(env):
        assert (root / "site" / "victim").read_bytes() == b"from the source"
