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

from mirrord.config.cmdline import program_missing, register_command_secrets, shown_output
from mirrord.failover import command
from mirrord.failover.result import Check
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


def program_checks(fo, action: str) -> list[Check]:
    """A failed Check `program.KEY` for each command line `action` ('failover',
    'switchover', 'failback') will start whose program cannot be run on this host:
    reload_command, pre_ACTION, post_ACTION (config.cmdline.program_missing). A missing
    one passed check-config and the dry run, and failed after the flip, the site switched
    and not reloaded, with advice to run by hand a program that does not exist (a trial).
    Refused before anything changes; --force accepts it (mirrord.failover.force)."""
    out = []
    for key, line in (("reload_command", fo.reload_command),
                      (f"pre_{action}", fo.hook(f"pre_{action}")),
                      (f"post_{action}", fo.hook(f"post_{action}"))):
        if not line:
            continue
        try:
            # that a file is there, not that this user may run it: /ready asks as the
            # health service's user; the run's own user finds out at the step
            where = program_missing(line, executable=False)
        except ValueError:
            continue   # the config refused it already
        if where is not None:
            program = shlex.split(line)[0]
            out.append(Check(f"program.{key}", False, redact(program), "present here",
                             f"[failover] {key}: the program {redact(program)!r} {where}"))
    return out
