"""Renames that delete nothing never count toward the mass-change alarm, on the three real
targets (mirrord/alarm_moved.py: a file that stands at its own name again lives on).

Found by a tester (helper-169): with inotify, `mv a b; mv b a; mv a c; mkdir a` and then
renameat2(a, c, RENAME_EXCHANGE) - a 1,500-file directory renamed away and back, every
file still in the source - fired the alarm with count=1500. The subtree check of `a` that
the new empty directory asked for listed `a` while its files stood at `c`; by the time its
deletes were counted, the exchange had taken them back to `a`, where the look for a
rename's other name (`b`, `c`) did not find them. With `pause_on_alarm = yes` the deletes
were held, the re-sends waited behind them, and every target missed ~3,000 entries until
`mirrord resume-deletes`. Both watchers; the control: an `rm -rf` of the same 1,500 files
right after still fires the alarm and holds its deletes."""

from __future__ import annotations

import ctypes
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import Env, live_only_config, poll

FILES = 1500
THRESHOLD = 1000
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    """renameat2(a, b, RENAME_EXCHANGE)."""
    if _libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@pytest.fixture(params=["inotify", "fanotify"])
def env(request, tmp_path: Path, seaweedfs, sshd):
    cfg = live_only_config(tmp_path, seaweedfs, sshd, watcher=request.param, log_level="debug")
    cfg.write_text(cfg.read_text().replace(
        "[source:uploads]\n", f"[source:uploads]\nalarm_deletes = {THRESHOLD}\n"
                              "alarm_window = 10m\npause_on_alarm = yes\n", 1))
    e = Env(tmp_path, cfg)
    try:
        yield e
    finally:
        e.close()


def alarm(env: Env) -> dict:
    doc = env.daemon.status()["sources"]["uploads"]
    return {"state": doc["alarm"], "count": (doc.get("alarm_detail") or {}).get("count", 0)}


def test_a_directory_renamed_away_and_exchanged_back_counts_nothing(env: Env):
    src = env.src
    src.mkdir(exist_ok=True)
    env.daemon.start()
    (src / "a").mkdir()
    for i in range(FILES):
        (src / "a" / f"f{i}").write_bytes(b"%d" % i)
    env.converge()
    poll(env.drained, timeout=120, what="the first sync drained")

    os.rename(src / "a", src / "b")
    time.sleep(0.3)
    os.rename(src / "b", src / "a")
    time.sleep(0.1)
    (src / "a" / "new").write_bytes(b"new")
    os.rename(src / "a", src / "c")
    os.chmod(src / "c" / "f7", 0o600)
    (src / "a").mkdir()
    (src / "a" / "f1").write_bytes(b"other")
    time.sleep(0.5)
    exchange(src / "a", src / "c")       # the 1,501 files back at a, the new one at c

    env.assert_exact(timeout=180, passes_allowed=True)   # the pass at start: empty
    time.sleep(2.0)                      # any late count of the comparisons
    seen = alarm(env)
    assert seen["state"] == "ok" and seen["count"] < 10, seen
    assert "mass-change alarm: too many" not in env.log_text()

    # the control: the same files really deleted fire the alarm, and their deletes are held
    shutil.rmtree(src / "a")
    poll(lambda: alarm(env)["state"] == "alarm" and alarm(env)["count"] >= THRESHOLD,
         timeout=120, what="the alarm fired for an rm -rf of 1,500 files")
    assert env.daemon.status()["daemon"]["alarms"]["uploads"]["deletes_held"]
