"""A file replaced by a directory and back, again and again, under the real `mirrord run`
with keep_deleted on all three real targets (a tester's shape). One version of a file (its
bytes and mtime) that stood on a target once is kept once: seen on the local target
before the fix, the same inode linked in as 'overwritten' and renamed in with its
directory as 'dir-removed' under one stamp, because `rmdir d; echo > d` coalesced into a
put of d that was no longer a barrier, so the put of d/x went out in the same batch
(mirrord.journal.barriers). Then one version kept as 'dir-removed' at T1 and again at
T2 > T1: the delete of thing/inner.txt, claimed ahead of thing's tree removal, found the NEXT inner.txt
at the source and sent it before the removal, which kept it with its directory; it was
sent and kept again (tests/integration/test_tree_removal_waits_below.py: rows below a tree
removal now wait for it, and a file's delete that finds a file waits once for its event).
The rsync target kept one version as 'dir-removed' twice too, half a second apart (1 run
in 3): its plan looks at the source again, and the delete of thing/inner.txt (seen absent,
its copy kept as 'deleted') sent the next inner.txt written meanwhile, ahead of thing's tree
removal, which kept it; the next put and removal kept it again. An rsync item whose source
holds another kind than the shipper saw is now a wait
(tests/targets/test_rsync_plan_honours_kind.py)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


from tests.e2e.test_rewrite_in_place import settle
from tests.e2e.test_trash_e2e import env, reconcile_counts  # noqa: F401 - env: the fixture
from tests.reliability.conftest import poll


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_file_to_directory_and_back_keeps_each_version_once(env):
    thing = env.src / "thing"
    write(thing, b"a file first")
    env.daemon.start()
    poll(lambda: all(t.get("last_reconcile") for t in env.daemon.status()["targets"].values()),
         timeout=120, what="the start-up reconcile pass")
    settle(env)
    for i in range(6):
        os.unlink(thing)
        write(thing / "inner.txt", f"inner {i}".encode())
        if i % 2 == 0:
            settle(env)                       # the directory reaches the targets
        (thing / "inner.txt").unlink()
        thing.rmdir()
        write(thing, f"a file again {i}".encode())
    settle(env)

    twice = {}
    for name, target in env.targets.items():
        seen: dict[tuple, list] = {}
        for k in target.trash_list():
            with tempfile.NamedTemporaryFile(dir=env.tmp) as fh:
                target.trash_fetch(k, fh.name)
                digest = hashlib.sha1(Path(fh.name).read_bytes()).hexdigest()[:8]
            seen.setdefault((k.path, digest, k.mtime_ns), []).append(f"{k.stamp}.{k.why}")
        dup = {key: v for key, v in seen.items() if len(v) > 1}
        if dup:
            twice[name] = dup
    assert not twice, f"one version kept more than once: {twice}"
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in ("local", "s3", "host")}
