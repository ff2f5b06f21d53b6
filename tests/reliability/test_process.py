"""Process faults: SIGKILL at random moments, SIGTERM while busy, SIGSTOP until inotify overflows."""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest

from tests.reliability.churn import Churn
from tests.reliability.conftest import poll, sysctl


def _sigkill_loop(env, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    churn = Churn(env.src, seed, max_files=200, max_dirs=25)
    churn.run(steps=60)                      # something there before the first start
    for i in range(kills):
        env.daemon.start()
        stop = threading.Event()
        writer = threading.Thread(target=churn.run, kwargs={"stop": stop, "pause": 0.005})
        writer.start()
        time.sleep(rng.uniform(0.05, 1.5))  # a random moment in the churn
        assert env.daemon.kill(signal.SIGKILL) == -signal.SIGKILL
        time.sleep(rng.uniform(0.0, 0.3))   # the churn goes on while it is down
        stop.set()
        writer.join()
    env.daemon.start()
    env.converge()
    assert sum(churn.done.values()) > kills * 10
    assert env.daemon.stop() == 0


def test_sigkill_during_churn_quick(env):
    _sigkill_loop(env, kills=5, seed=7)


@pytest.mark.slow
def test_sigkill_during_churn_20_times(env):
    _sigkill_loop(env, kills=20, seed=20)


def test_sigterm_while_busy_exits_zero_and_loses_nothing(env):
    env.daemon.start()
    busy = threading.Event()

    def burst():
        for i in range(1500):
            d = env.src / f"d{i % 15:02d}"
            d.mkdir(exist_ok=True)
            (d / f"f{i:04d}").write_bytes(random.randbytes(512) + str(i).encode())
            if i == 600:
                busy.set()

    writer = threading.Thread(target=burst)
    writer.start()
    busy.wait(120)
    assert env.daemon.kill(signal.SIGTERM) == 0
    writer.join()
    assert "msg=stopped" in env.log_text()
    env.daemon.start()
    env.converge()
    assert env.daemon.stop() == 0


@pytest.mark.serial
def test_sigstop_until_the_inotify_queue_overflows(env):
    inotify_only(env)    # fanotify's queue is unlimited for root: it never overflows
    for i in range(10):
        (env.src / f"before{i}").write_text(str(i))
    # The queue limit is copied into an inotify instance when it is created, so the
    # global sysctl is lowered only while the daemon starts, then restored at once.
    with sysctl("max_queued_events", 64):
        env.daemon.start()                       # "running" is logged after the watches exist
    env.converge()
    env.daemon.proc.send_signal(signal.SIGSTOP)
    try:
        for i in range(400):   # in watched directories: new ones get no watch while stopped
            (env.src / f"stopped{i:03d}").write_bytes(random.randbytes(256))
        (env.src / "newdir" / "deeper").mkdir(parents=True)
        (env.src / "newdir" / "deeper" / "inside").write_text("inside")
        (env.src / "before3").unlink()
        (env.src / "before4").rename(env.src / "renamed4")
    finally:
        env.daemon.proc.send_signal(signal.SIGCONT)
    poll(lambda: "event queue overflow" in env.log_text(), what="overflow logged")
    env.converge()
    status = poll(lambda: (s := env.daemon.status()) and (s.get("daemon") or {}).get("overflows", 0) >= 1 and s,
                  what="overflow counted in status")
    assert status["daemon"]["overflows"] >= 1
    assert env.daemon.stop() == 0


def inotify_only(env) -> None:
    """Make the env's daemon use the inotify watcher ([source] watcher = inotify)."""
    text = env.cfg.read_text()
    env.cfg.write_text(text.replace("[source:uploads]\n", "[source:uploads]\nwatcher = inotify\n"))
