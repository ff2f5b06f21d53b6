"""Run one site command (a hook, reload_command) bounded in time and in memory.

subprocess.run(capture_output=True, timeout=...) fell short three ways, each
met in a failover:
- it keeps all output in memory: a hook that floods (a `set -x` loop, `yes`)
  grew mirrord by as much as it wrote; here only the last TAIL_BYTES are kept;
- it waits for end-of-file on the pipe, not for the command: a hook that
  started a background child (`arping ... &`, `nohup ...`) which kept the
  pipe open was reported "still running after hook_timeout; killed" although
  it had exited 0; here the command is done when its process exits (what
  remains in the pipe is read for at most DRAIN_SECONDS);
- on timeout it kills the command's process only: `sh -c 'sleep 600; ...'`
  left the sleep running forever; here the command runs in its own session
  (setsid(2)) and the whole process group gets SIGKILL, as systemd's
  KillMode=control-group does for a unit's processes. The same when the caller is
  interrupted (SIGINT, SIGTERM: failover.interrupt) while the command runs.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

TAIL_BYTES = 64 * 1024      # output kept (the caller shows less, redacted)
DRAIN_SECONDS = 1.0         # reading on after the command exited, for its last lines
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None when killed at the timeout
    output: str             # the last TAIL_BYTES of stdout and stderr, interleaved
    timed_out: bool


def run(argv: list[str], *, env: dict[str, str] | None, timeout: float,
        monotonic: Callable[[], float] = time.monotonic) -> Outcome:
    """Run `argv` (no shell, stdin closed, `env` the full environment or None for this
    process's) for at most `timeout` seconds. Raises OSError when it cannot be started
    (e.g. FileNotFoundError for a missing program); never for what the command does."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return _watch(proc, timeout, monotonic)
    except BaseException:
        # interrupted (failover.interrupt: SIGINT, SIGTERM) or failed while it runs: the
        # command is in its own session, nothing else would stop it (a breaker: the hook
        # or reload ran on after mirrord was gone)
        _kill_group(proc.pid)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
        raise


def _watch(proc: subprocess.Popen, timeout: float, monotonic: Callable[[], float]) -> Outcome:
    tail = bytearray()
    deadline = monotonic() + timeout
    timed_out = False
    assert proc.stdout is not None
    with proc.stdout:
        fd = proc.stdout.fileno()
        exited_at: float | None = None
        while True:
            now = monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is None and now >= deadline:
                timed_out = True
                break
            if exited_at is not None and now - exited_at >= DRAIN_SECONDS:
                break     # a background child holds the pipe: the command itself is done
            limit = deadline if exited_at is None else exited_at + DRAIN_SECONDS
            ready, _, _ = select.select([fd], [], [], max(0.0, min(0.2, limit - now)))
            if ready:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    break     # end of file: nobody holds the pipe any more
                tail += chunk
                del tail[:-TAIL_BYTES]
    if not timed_out and proc.poll() is None:   # it closed its output but runs on
        try:
            proc.wait(timeout=max(0.0, deadline - monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        _kill_group(proc.pid)
    returncode = proc.wait()
    return Outcome(None if timed_out else returncode, tail.decode(errors="replace"), timed_out)


def _kill_group(pgid: int) -> None:
    """SIGKILL the command's process group (its own, from start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
