"""On an S3 bucket with versioning, mirrord's own moves keep nothing; a user's loss still does.

A rename on S3 is a CopyObject to the new key and a delete of the old one; in a versioned
bucket that delete leaves the old key's version noncurrent under a delete marker, which
`mirrord trash` listed as a 'deleted' kept version (and `undelete` offered back: a name
the user renamed away, its bytes a second time), and retention counted against the cap.
The other targets keep nothing for a rename kept as a move (README, "What is kept
where"). Each shape runs through the real daemon on a local target and a versioned
SeaweedFS bucket side by side, and each target's `mirrord trash --json` must list the
same (path, why): nothing for a rename, a directory rename, an exchange, a file replaced
by a directory and back; a real delete and overwrite still listed on both.
"""

from __future__ import annotations

import os
import shutil
from functools import partial

import pytest

from tests.e2e import keep_nothing as steps
from tests.e2e.test_exchange_in_flight import exchange
from tests.reliability.conftest import Env, poll


@pytest.fixture
def env(tmp_path, seaweedfs):
    cfg = steps.versioned_and_local(tmp_path, seaweedfs)
    e = Env(tmp_path, cfg, names=("s3", "local"))
    try:
        yield e
    finally:
        e.close()


TIMEOUT = 120   # seconds, each bounded poll
settle = partial(steps.settle, timeout=TIMEOUT)
start = partial(steps.start, timeout=TIMEOUT, versioned="s3")
listed = partial(steps.listed, versioned="s3")
write = steps.write


def test_file_and_directory_renames_keep_nothing(env):
    start(env, {"a.jpg": b"photo a", "d/x.jpg": b"x", "d/y.jpg": b"y", "d/sub/z.jpg": b"z"})
    os.rename(env.src / "a.jpg", env.src / "b.jpg")
    settle(env)
    os.rename(env.src / "d", env.src / "e")
    settle(env)
    os.rename(env.src / "e" / "sub", env.src / "moved")    # out of a renamed directory
    settle(env)
    assert listed(env) == {"s3": [], "local": []}
    assert env.daemon.cli("undelete", "a.jpg", check=False).returncode == 1   # nothing kept


def as_versions(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A versioned bucket has no 'dir-removed': each key a directory removal took is a
    key deleted."""
    return sorted((path, "deleted" if why == "dir-removed" else why) for path, why in rows)


def test_exchange_keeps_what_the_local_target_keeps(env):
    start(env, {"one.jpg": b"first", "two.jpg": b"second",
                "D1/f.jpg": b"in D1", "D2/g.jpg": b"in D2"})
    exchange(env.src / "one.jpg", env.src / "two.jpg")
    settle(env)
    exchange(env.src / "D1", env.src / "D2")
    settle(env)
    seen = listed(env)
    # what the journal makes of an exchange (puts over each other, a directory replaced)
    # is its own business; a versioned bucket must list what the local target keeps, and
    # no version twice (the re-sends of D1/g.jpg and D2/f.jpg listed as 'overwritten')
    assert seen["s3"] == as_versions(seen["local"]), seen


def test_file_replaced_by_a_directory_and_back_keeps_nothing(env):
    """On S3 a file `f` and keys below `f/` can stand at once: the move of the file `f`
    carried the directory's f/inner.jpg along to f.bak/inner.jpg (the mirror was wrong)."""
    start(env, {"f": b"a file called f"})
    os.rename(env.src / "f", env.src / "f.bak")
    write(env.src / "f" / "inner.jpg", b"inside the directory f")
    settle(env)
    os.rename(env.src / "f", env.src / "dir-f")
    settle(env)
    os.rename(env.src / "f.bak", env.src / "f")
    settle(env)
    # the put of f/inner.jpg waits for the move of the file f (a barrier over its old
    # name): run beside it, it kept the file f on the local target as 'deleted'
    # (tests/integration/test_move_then_directory_at_old_name.py)
    assert listed(env) == {"s3": [], "local": []}
    # back to back: the file's rename is a move (f renamed back, the same file: not the
    # second half of an exchange, fanotify_renames._same_object), and the directory's,
    # onto f where that move is pending, may find it pending or not: each target decides
    # (the journal's per-target busy check), so their listings may differ. Whatever the
    # timing nothing of f is kept (its bytes are at f.bak), and the most a target keeps
    # is what a directory's rename that cannot be a move keeps of its old name (README,
    # "What is kept where"): dir-f/inner.jpg
    os.rename(env.src / "f", env.src / "f.bak")
    os.rename(env.src / "dir-f", env.src / "f")
    settle(env)
    seen = listed(env)
    assert set(seen["local"]) <= {("dir-f/inner.jpg", "dir-removed")}, seen
    assert set(seen["s3"]) <= {("dir-f/inner.jpg", "deleted")}, seen


def test_real_delete_and_overwrite_after_renames_stay_kept(env):
    start(env, {"a.jpg": b"photo a", "c.jpg": b"photo c", "d/x.jpg": b"x",
                "same.jpg": b"same bytes"})
    os.rename(env.src / "a.jpg", env.src / "b.jpg")
    os.rename(env.src / "d", env.src / "e")
    settle(env)
    (env.src / "b.jpg").unlink()                           # a loss under the new name
    write(env.src / "c.jpg", b"overwritten c")
    # a rewrite of the very bytes under another mtime keeps nothing: no version is lost
    # (kept as 'overwritten' before, a duplicate: a touch's shape, helper-161)
    write(env.src / "same.jpg", b"same bytes")
    shutil.rmtree(env.src / "e")
    settle(env)
    want = [("b.jpg", "deleted"), ("c.jpg", "overwritten"), ("e/x.jpg", "dir-removed")]
    seen = listed(env)
    # e/x.jpg is kept either way, but why is timing: its own delete ('deleted') or the
    # removal of e's tree ('dir-removed'), whichever reaches the target first
    assert as_versions(seen["local"]) == as_versions(want), seen
    assert seen["s3"] == as_versions(want), seen
    assert dict(seen["local"]).get("b.jpg") == "deleted", seen
    env.daemon.cli("undelete", "b.jpg")
    poll(lambda: env.targets["s3"].read("b.jpg") == b"photo a", timeout=60,
         what="b.jpg restored on s3")
