"""The daemon's main loop survives any one step's error (Patroni's run_cycle model).

The real Daemon runs in-process (a thread) on a real source tree with its default
watcher and a local target; a failure is injected into each hook and each step, and the daemon
must go on mirroring, count the errors, and end only on a fatal error.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mirrord import config as config_mod
from mirrord.daemon import Daemon
from mirrord.errors import FatalError
from mirrord.reconcile.schedule import attach
from mirrord.watch.events import FsEvent
from tests.reliability.conftest import poll


def make_daemon(tmp_path: Path, *, reconcile: str = "") -> Daemon:
    (tmp_path / "src").mkdir(exist_ok=True)
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"""
[mirrord]
state_dir = {tmp_path / 'state'}
heartbeat_interval = 200ms

[source:up]
path = {tmp_path / 'src'}
targets = local

[target:local]
type = local
path = {tmp_path / 'mirror'}

[reconcile]
every = 1
{reconcile}""")
    daemon = Daemon(config_mod.load(ini))
    daemon._install_signals = lambda: None   # signal handlers need the main thread
    attach(daemon)
    return daemon


class Running:
    """Daemon.run() on a thread; `result` is its return value or exception."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.result: object = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.daemon.run()
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            self.result = exc

    def __enter__(self) -> "Running":
        self.thread.start()
        poll(lambda: self.daemon.shipper is not None, what="the daemon set up")
        return self

    def __exit__(self, *exc) -> None:
        self.daemon.request_stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        assert self.result == 0, self.result


def boom(*_args) -> None:
    raise OSError(28, "No space left on device")


def mirrors(tmp_path: Path, name: str) -> None:
    (tmp_path / "src" / name).write_bytes(name.encode())
    poll(lambda: (tmp_path / "mirror" / name).exists(), what=f"{name} mirrored")


@pytest.mark.parametrize("hook", ["periodic_hooks", "scan_hooks"])
def test_a_failing_hook_does_not_stop_the_daemon(tmp_path, hook):
    daemon = make_daemon(tmp_path)
    getattr(daemon, hook).insert(0, boom)
    with Running(daemon):
        mirrors(tmp_path, "first.jpg")
        poll(lambda: daemon.counters.cycle_errors >= 2, what="the hook failing repeatedly")
        mirrors(tmp_path, "second.jpg")
    assert daemon.counters.cycle_errors >= 2


def test_a_failing_trouble_hook_does_not_stop_the_daemon(tmp_path):
    daemon = make_daemon(tmp_path)
    daemon.trouble_hooks.insert(0, boom)
    with Running(daemon):
        daemon.wake()
        # an overflow is trouble: the hook runs (and fails) inside the cycle's read step
        real_read = daemon.watchers["up"].read
        sent = []

        def read_with_overflow(timeout_ms=0):
            if not sent:
                sent.append(True)
                return [FsEvent("overflow", detail="injected")]
            return real_read(timeout_ms)

        daemon.watchers["up"].read = read_with_overflow
        daemon.wake()
        poll(lambda: daemon.counters.cycle_errors >= 1, what="the trouble hook failed")
        mirrors(tmp_path, "after-trouble.jpg")


@pytest.mark.parametrize("step", ["_collect_scans", "_dispatch", "_maybe_heartbeat",
                                  "_read_watchers"])
def test_a_step_failing_once_is_survived(tmp_path, step):
    daemon = make_daemon(tmp_path)
    real = getattr(daemon, step)
    failed = []

    def once(*args, **kwargs):
        if not failed:
            failed.append(True)
            raise RuntimeError(f"injected into {step}")
        return real(*args, **kwargs)

    setattr(daemon, step, once)
    with Running(daemon):
        poll(lambda: failed, what=f"{step} ran")
        mirrors(tmp_path, "survived.jpg")
    assert daemon.counters.cycle_errors >= 1


def test_a_fatal_error_ends_the_daemon(tmp_path):
    daemon = make_daemon(tmp_path)

    def fatal(_daemon) -> None:
        raise FatalError("injected fatal error")

    daemon.periodic_hooks.insert(0, fatal)
    runner = Running(daemon)
    runner.thread.start()
    runner.thread.join(timeout=60)
    assert isinstance(runner.result, FatalError)
