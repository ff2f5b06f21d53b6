"""A `kill -9` of the real daemon mid-copy leaves nothing on the local target after the
next start (issue 14, "Targets leave nothing behind").

Found in a trial: the partial temp file of a large copy stayed beside the destination
for good (55 MiB in one run), hidden from the listing, so reconcile called the mirror
in sync. The kill here lands while the temp file is being written: the test polls
(bounded) for a file other than the destination to appear in the target, kills the
daemon at once, checks the partial file is really there, then starts the daemon
again and requires the target to hold exactly the source and mirrord's own state.
"""

from __future__ import annotations

import filecmp
import os
import signal
import time
from pathlib import Path

from mirrord.targets.local import LocalTarget
from tests.reliability.conftest import Daemon

BIG = 200 << 20          # bytes: a copy with fsync that takes a while even on a fast disk
ATTEMPTS = 5             # a copy that finished before the poll saw it is tried again, renamed


def config(tmp: Path) -> Path:
    (tmp / "src").mkdir()
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = {tmp / "state"}
workers = 2
heartbeat_interval = 500ms

[source:uploads]
path = {tmp / "src"}
targets = local

[target:local]
type = local
path = {tmp / "mirror"}
""")
    cfg.chmod(0o600)
    return cfg


def files_under(root: Path) -> set[str]:
    """Every regular file below `root`, mirrord's own area included, as relative paths."""
    out = set()
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def own_state(rel: str) -> bool:
    """What mirrord keeps in its area for good: the heartbeat, the open lock and the open's
    witness (`.mirrord/open-<token>`: the root checks, mirrord.targets.root_check)."""
    name = os.path.basename(rel)
    if rel == f".mirrord/{name}" and name.startswith("open-"):
        return True
    return rel.startswith(".mirrord/") and (name == "heartbeat.json"
                                            or (name.startswith("mirrord-target-")
                                                and name.endswith(".lock")))


def write_big(path: Path) -> None:
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for i in range(BIG >> 20):
            fh.write(chunk[:-8] + i.to_bytes(8, "big"))   # no two MiB alike


def wait_for_partial(mirror: Path, final: str, daemon: Daemon, timeout: float = 120.0) -> str | None:
    """The first file in the target that is neither the destination nor mirrord's own
    state (a temp file being written), or None when the destination was installed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.proc.poll() is None, daemon.log.read_text(errors="replace")
        found = files_under(mirror) if mirror.exists() else set()
        partial = sorted(p for p in found if p != final and not own_state(p))
        if partial:
            return partial[0]
        if final in found and os.path.getsize(mirror / final) == BIG:
            return None
        time.sleep(0.01)
    raise AssertionError(f"no copy of {final} started in {timeout} s")


def test_kill_9_mid_copy_leaves_no_partial_file_after_the_next_start(tmp_path):
    cfg = config(tmp_path)
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    daemon = Daemon(cfg, tmp_path / "mirrord.log")
    try:
        for attempt in range(ATTEMPTS):
            daemon.start()
            big = f"video-{attempt}.webm"
            write_big(src / big)
            partial = wait_for_partial(mirror, big, daemon)
            daemon.kill(signal.SIGKILL)
            if partial is not None and (mirror / partial).exists():
                break
            (src / big).unlink()   # installed before the poll saw its temp file: again
        else:
            raise AssertionError(f"the kill never landed mid-copy in {ATTEMPTS} attempts")
        assert 0 < os.path.getsize(mirror / partial) <= BIG

        daemon.start()                              # the next start
        deadline = time.monotonic() + 300
        while True:   # bounded: the restart ships the file again; nothing else may remain
            left = {p for p in files_under(mirror) if not own_state(p)}
            if left == {big} and os.path.getsize(mirror / big) == BIG:
                break
            assert time.monotonic() < deadline, f"left behind after the restart: {sorted(left)}"
            assert daemon.proc.poll() is None, daemon.log.read_text(errors="replace")
            time.sleep(0.2)
        assert daemon.stop() == 0
        assert filecmp.cmp(src / big, mirror / big, shallow=False)
        # and the listing reconcile compares shows exactly the source
        assert [e.path for e in LocalTarget("local", mirror).list() if not e.is_dir] == [big]
    finally:
        daemon.stop()
