"""A failover, switchover or failback stopped by SIGINT or SIGTERM, accounted for.

Before, Ctrl-C or `kill` during a run left no failover.log line and no account on
stdout, and the hook or reload_command it had started ran on in its own session
(a breaker). Now, while a run is under way, these signals raise `Interrupted`
(a BaseException, so no step's `except Exception` takes it for a step failure);
command.run kills the running command's process group on the way out, and the
procedure marks the step it was in, prints the account, appends the failover.log
line (outcome "interrupted") and exits 128 + the signal number (130, 143).
Further signals are ignored while that is done. SIGHUP (a dropped ssh session) is
ignored for these commands, as for `run` and `health` (cli/main.py): the run
goes on to its end, its output dropped if nobody reads it (README, Failover).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from mirrord.failover.result import FAILED, PLANNED, SKIPPED, Run

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM during a run."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame) -> None:
    for sig in SIGNALS:   # the account and the log line are written undisturbed
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise Interrupted; the handlers before are put
    back on leaving. Outside the main thread (tests) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, _raise) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def mark(run: Run, exc: Interrupted) -> str:
    """Mark where `run` was interrupted: the step under way FAILED, the later ones
    SKIPPED. Returns where, in words ("during the checks", "in step reload", ...)."""
    started = [s for s in run.steps if s.status != PLANNED]
    if not started:
        return f"during the {run.phase or 'checks'}: nothing was changed"
    where = ""
    for step in run.steps:
        if step.status != PLANNED:
            continue
        if not where:
            where = f"in step {step.name}"
            step.status, step.detail = FAILED, f"interrupted by {exc.name} while running"
        else:
            step.status, step.detail = SKIPPED, f"not attempted: interrupted by {exc.name}"
    return where or "after the last step"
