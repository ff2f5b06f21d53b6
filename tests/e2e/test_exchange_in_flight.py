"""Two directories swapped with renameat2(RENAME_EXCHANGE) (`mv --exchange`, a
deploy tool publishing a new release) while a new subdirectory of one of them is still
being sent left that subdirectory (on S3, its file) on the targets for good. Found by a
breaker; fixed by the journal (EnqueueMixin._rerun_in_flight).

Shape: D1/one.txt, D2/two.txt and D2/sub/deep.txt (6 MiB) are written; 0.1 s later, while
the mkdir of D2/sub and the put of D2/sub/deep.txt are in flight to a target (the rsync
host, being the slowest, nearly always), D1 and D2 are exchanged. The move D1 -> D2 cannot
be kept as a move there (work is pending below D2), so it becomes a removal of D1, a
mkdir of D2 and a subtree catch-up of D2 against the `shipped` table; that catch-up does
not know of D2/sub yet (its mkdir is not acked), and the mkdir's ack, recorded afterwards,
left D2/sub on the target with nothing queued to remove it. Seen with both watchers,
6 runs in 6. Now the rows in flight below D2 run once more after their ack.
"""

from __future__ import annotations

import ctypes
import os
import platform
import time
from pathlib import Path

import pytest

from tests.e2e.test_exact_stream import env, start  # noqa: F401 - env: the fixture
from tests.exactness import wait_exact
from tests.reliability.conftest import Env, excluded, live_only_config, poll

SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}[platform.machine()]   # glibc has no wrapper
RENAME_EXCHANGE = 2                                                  # rename(2)
AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_RENAMEAT2, AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b),
                    RENAME_EXCHANGE):
        raise OSError(ctypes.get_errno(), "renameat2")


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_directories_exchanged_while_a_new_subdirectory_is_in_flight(env):
    start(env)
    for i in range(3):   # three releases: the window is hit nearly every time on the host
        rel = env.src / f"release{i}"
        write(rel / "D1" / "one.txt", b"one")
        write(rel / "D2" / "two.txt", b"two")
        write(rel / "D2" / "sub" / "deep.txt", os.urandom(6 << 20))
        time.sleep(0.1)   # the events are read and the sends have started
        exchange(rel / "D1", rel / "D2")
    poll(env.drained, timeout=120, what="the backlog drained")
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=60, excluded=excluded)


@pytest.fixture(params=["inotify", "fanotify"])
def env_path_excludes(request, tmp_path, seaweedfs, sshd):
    """The same config with an exclude that depends on the path (`/keep-out/*.tmp`): a
    directory move is then always a tree removal and a re-send (daemon_events._move)."""
    cfg = live_only_config(tmp_path, seaweedfs, sshd, watcher=request.param,
                           log_level="debug")
    text = cfg.read_text()
    line = next(x for x in text.splitlines() if x.startswith("exclude ="))
    cfg.write_text(text.replace(line, line + ", /keep-out/*.tmp", 1))
    e = Env(tmp_path, cfg)
    try:
        yield e
    finally:
        e.close()


def test_the_same_exchange_with_path_dependent_excludes(env_path_excludes):
    env = env_path_excludes
    start(env)
    for i in range(3):
        rel = env.src / f"release{i}"
        write(rel / "D1" / "one.txt", b"one")
        write(rel / "D2" / "two.txt", b"two")
        write(rel / "D2" / "sub" / "deep.txt", os.urandom(6 << 20))
        time.sleep(0.1)
        exchange(rel / "D1", rel / "D2")
    poll(env.drained, timeout=120, what="the backlog drained")
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=60, excluded=excluded)
