"""Site-specific commands around the switch: [failover] pre_/post_ failover, switchover, failback.

A hook is one command line, split like argv with shlex and run without a
shell (no word splitting or globbing surprises, nothing to inject), with
stdin closed and a timeout ([failover] hook_timeout, default 30 s). It gets
the caller's environment plus MIRRORD_* variables saying what is happening, so
one script can serve every hook (the pattern of Patroni's callbacks and
keepalived's notify scripts). Its output is kept (tail only), redacted (the
command line's own secret values masked by value too: config.cmdline.shown_output),
and ends up in the log and in failover.log.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import dataclass

from mirrord.config.cmdline import register_command_secrets, shown_output
from mirrord.failover import command
from mirrord.logsetup import kv, redact

OUTPUT_TAIL = 2000
log = logging.getLogger("mirrord.failover")


@dataclass(frozen=True)
class HookResult:
    name: str          # e.g. "pre_failover"
    ok: bool
    detail: str        # "exit 0; output: ..." or why it failed
    returncode: int | None
    output: str        # redacted, tail only


def environment(*, action: str, dry_run: bool, forced: bool, replay_lag: float | None,
                heartbeat_age: float | None, hook: str) -> dict[str, str]:
    """The MIRRORD_* variables a hook sees; seconds as decimals, "" when not measured."""
    def seconds(value: float | None) -> str:
        return "" if value is None else f"{value:.3f}"
    return {"MIRRORD_ACTION": action, "MIRRORD_HOOK": hook,
            "MIRRORD_DRY_RUN": "1" if dry_run else "0", "MIRRORD_FORCED": "1" if forced else "0",
            "MIRRORD_REPLAY_LAG_SECONDS": seconds(replay_lag),
            "MIRRORD_HEARTBEAT_AGE_SECONDS": seconds(heartbeat_age)}


def run(name: str, command_line: str, env: dict[str, str], *, timeout: float) -> HookResult:
    """Run hook `name`; never raises: a missing program, a timeout or a non-zero exit is ok=False.

    `env` is added to this process's environment. After `timeout` seconds the hook and
    every process it started in its session are killed (command.run: output bounded, a
    background child holding the output does not count as the hook running)."""
    register_command_secrets(command_line)
    try:
        done = command.run(shlex.split(command_line), env={**os.environ, **env},
                           timeout=timeout)
    except (OSError, ValueError) as exc:
        return _logged(HookResult(name, False, redact(f"could not run: {exc}"), None, ""))
    out = _tail(done.output, command_line)
    if done.timed_out:
        return _logged(HookResult(name, False, f"still running after {timeout:g}s (hook_timeout);"
                                  f" killed" + (f"; output: {out}" if out else ""), None, out))
    detail = f"exit {done.returncode}" + (f"; output: {out}" if out else "; no output")
    return _logged(HookResult(name, done.returncode == 0, detail, done.returncode, out))


def _tail(output: str, command_line: str) -> str:
    text = shown_output(output, command_line)
    return text if len(text) <= OUTPUT_TAIL else "..." + text[-OUTPUT_TAIL:]


def _logged(result: HookResult) -> HookResult:
    level = logging.INFO if result.ok else logging.WARNING
    log.log(level, redact(kv(event="failover_hook", hook=result.name, ok=result.ok,
                             exit=result.returncode, output=result.output or "-")))
    return result
