"""SIGHUP neither stops nor reloads the daemon: one warning line says to restart it, and
the live stream goes on. Before, SIGHUP's default action ended `mirrord run` without a
line, and systemd's Restart=on-failure takes a SIGHUP death for a clean stop, so an
operator's habitual `kill -HUP` to reload stopped mirroring for good (a breaker)."""

from __future__ import annotations

import signal

from tests.e2e.test_exact_stream import env, start, write  # noqa: F401 - env: the fixture
from tests.reliability.conftest import poll


def test_sighup_is_said_and_the_daemon_runs_on(env):
    start(env)
    env.daemon.proc.send_signal(signal.SIGHUP)
    poll(lambda: "SIGHUP: mirrord does not reload its configuration" in env.log_text(),
         what="the SIGHUP line")
    write(env.src / "after-hup.jpg", b"still mirrored")
    env.assert_exact(passes_allowed=True)
    assert env.daemon.proc.poll() is None
