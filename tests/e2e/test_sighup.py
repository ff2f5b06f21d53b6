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


def test_sighup_is_ignored_from_the_first_line_of_main_for_run_and_health(monkeypatch):
    """Breaker J: a SIGHUP in the first ~0.15 s (the imports, before the daemon's handler)
    still ended `mirrord run` and `mirrord health`. main() ignores it for them before it
    imports anything; the command's handler then says it. Other commands keep the default."""
    import signal as sig
    from mirrord.cli import dispatch as dispatch_mod
    from mirrord.cli import main as main_mod

    seen = []
    monkeypatch.setattr(dispatch_mod, "dispatch", lambda args: seen.append(
        (args[-1], sig.getsignal(sig.SIGHUP))) or 0)
    hup, intr = sig.getsignal(sig.SIGHUP), sig.getsignal(sig.SIGINT)
    try:
        for command in ("run", "health", "status"):
            sig.signal(sig.SIGHUP, sig.SIG_DFL)
            monkeypatch.setattr("sys.argv", ["mirrord", "-c", "x.ini", command])
            assert main_mod.main() == 0
    finally:
        sig.signal(sig.SIGHUP, hup)
        sig.signal(sig.SIGINT, intr)
    assert seen == [("run", sig.SIG_IGN), ("health", sig.SIG_IGN), ("status", sig.SIG_DFL)]
