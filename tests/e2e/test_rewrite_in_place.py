"""A file rewritten in place (open O_TRUNC, write, close) again and again while the real
`mirrord run` ships it (found by a tester: 0-byte versions in the trash). Every version the
local and S3 targets ever held, as the trash shows with keep_deleted on, is a version the
source held when closed: never the empty file between the truncate and the write (the
read lease is released once observe() has looked; the targets check what they read
before making it visible: fsutil.check_read_whole). The rsync target's own process reads
the file, so there a torn read can stand on the mirror until the writer's close sends the
final version (the shipper does not record it as shipped: observe.changed_since); every
target ends exact. Runs with each watcher on all three real targets."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest

from tests.e2e.test_trash_e2e import keeping_config
from tests.exactness import wait_exact
from tests.reliability.conftest import Env, excluded, poll


@pytest.fixture(params=["inotify", "fanotify"])
def env(request, tmp_path, seaweedfs, sshd):
    cfg = keeping_config(tmp_path, seaweedfs, sshd)
    cfg.write_text(cfg.read_text().replace("[source:uploads]\n",
                                           f"[source:uploads]\nwatcher = {request.param}\n"))
    e = Env(tmp_path, cfg)
    try:
        yield e
    finally:
        e.close()


def settle(env: Env) -> None:
    poll(env.drained, timeout=180, what="the backlog drained")
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=180, excluded=excluded)


def test_kept_versions_were_all_closed_versions_of_the_source(env):
    files = [env.src / "k" / f"f{j}.txt" for j in range(10)]
    closed: dict[str, dict[str, int]] = {}          # path -> {sha1: mtime_ns} of closed versions
    (env.src / "k").mkdir(parents=True)

    def write(path: Path, data: bytes) -> None:
        with open(path, "wb") as fh:                 # O_TRUNC: empty until the write below
            fh.write(data)
        closed.setdefault(f"k/{path.name}", {})[hashlib.sha1(data).hexdigest()] = \
            path.stat().st_mtime_ns

    for j, f in enumerate(files):
        write(f, f"orig {j}".encode())
    env.daemon.start()
    poll(lambda: all(t.get("last_reconcile") for t in env.daemon.status()["targets"].values()),
         timeout=120, what="the start-up reconcile pass")
    settle(env)
    for i in range(30):
        for j, f in enumerate(files):
            write(f, f"round {i} file {j}\n".encode() * (i + 1))
    settle(env)

    bad = []
    for name, target in env.targets.items():
        if target.type == "rsync":   # its own process reads the source (module docstring)
            continue
        for k in target.trash_list("k"):
            with tempfile.NamedTemporaryFile(dir=env.tmp) as fh:
                target.trash_fetch(k, fh.name)
                data = Path(fh.name).read_bytes()
            digest = hashlib.sha1(data).hexdigest()
            if digest not in closed[k.path]:
                bad.append((name, k.path, k.stamp, len(data), data[:24]))
    assert not bad, f"the mirror held versions the source never closed: {bad}"
