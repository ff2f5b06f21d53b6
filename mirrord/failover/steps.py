"""The changes a run makes, in order: flip the app config, flush each memcached, reload,
check the site answers (check_url), run the post hook. A command line is described
through config.values.shown_command (its credentials masked).

`build_plan` only describes; `execute` carries the plan out and never stops
half-way on a flush or reload failure: every server is still flushed and the
reload still runs, and each failed step says how to finish it by hand. Only a
failed flip stops the rest (nothing else is worth doing then). The post hook
runs last, so its failure is reported after everything else ran.
"""

from __future__ import annotations

import shlex

from mirrord.config import FailoverConfig
from mirrord.config.cmdline import register_command_secrets, shown_output
from mirrord.config.values import shown_command
from mirrord.failover import cache, command, hooks, sitecheck
from mirrord.failover.appconfig import FlagFileSwitch, SymlinkSwitch
from mirrord.failover.result import DONE, FAILED, SKIPPED, UNCHANGED, Step
from mirrord.logsetup import redact

OUTPUT_TAIL = 2000


def build_plan(fo: FailoverConfig, switch: SymlinkSwitch | FlagFileSwitch, *,
               readonly: bool, post_hook: str = "") -> list[Step]:
    """The steps, described only; `post_hook` names the hook to run last (e.g. post_failover)."""
    direction = "read-only" if readonly else "read-write"
    steps = [Step("app config", switch.describe(readonly), kind="flip",
                  finish=f"make the application use its {direction} configuration by hand")]
    for server in fo.memcached:
        steps.append(Step(f"memcached {cache.name(server)}",
                          "flush_all, verified with a sentinel key", kind="flush",
                          server=server, finish=cache.flush_command(server)))
    if fo.reload_command:
        shown = shown_command(fo.reload_command)
        steps.append(Step("reload", f"run {shown}", kind="reload",
                          finish=f"run {shown} by hand"))
    if fo.check_url:
        match = f" and match {fo.check_pattern!r}" if fo.check_pattern else ""
        steps.append(Step("check_url", f"GET {fo.check_url}{match}", kind="check",
                          finish=f"open {fo.check_url} and see the site answers {direction}"))
    if post_hook and fo.hook(post_hook):
        shown = shown_command(fo.hook(post_hook))
        steps.append(Step(f"hook {post_hook}", f"run {shown}", kind="hook",
                          hook=post_hook, finish=f"run {shown} by hand"))
    return steps


def execute(steps: list[Step], fo: FailoverConfig, switch: SymlinkSwitch | FlagFileSwitch, *,
            readonly: bool, hook_env: dict[str, str] | None = None) -> None:
    """Run the plan in order, recording each step's outcome on the step itself.

    `hook_env` is the MIRRORD_* environment given to a hook step (hooks.environment).
    Never raises for a step: an exception a step did not foresee is that step FAILED
    (with its type and message), so the rest still runs, the account is printed and
    failover.log gets its line (a check_url answered by a non-HTTP server once escaped
    as a traceback after the flip, with no record of what was done)."""
    for step in steps:
        try:
            _run_step(step, fo, switch, readonly, hook_env or {})
        except Exception as exc:   # noqa: BLE001 (reported on the step, see above)
            step.status, step.detail = FAILED, redact(f"{type(exc).__name__}: {exc}")
        if step.kind == "flip" and step.status == FAILED:
            for rest in steps[1:]:
                rest.status, rest.detail = SKIPPED, "not attempted: the flip failed"
            return


def _run_step(step: Step, fo: FailoverConfig, switch: SymlinkSwitch | FlagFileSwitch,
              readonly: bool, hook_env: dict[str, str]) -> None:
    if step.kind == "flip":
        _flip(step, switch, readonly)
    elif step.kind == "flush":
        assert step.server is not None
        result = cache.flush_server(step.server, timeout=fo.connect_timeout)
        step.status, step.detail = (DONE if result.ok else FAILED), result.detail
    elif step.kind == "reload":
        _reload(step, fo.reload_command, fo.hook_timeout)
    elif step.kind == "check":
        ok, step.detail = sitecheck.check(fo.check_url, fo.check_pattern,
                                          timeout=fo.check_timeout)
        step.status = DONE if ok else FAILED
    elif step.kind == "hook":
        env = {**hook_env, "MIRRORD_HOOK": step.hook}
        result = hooks.run(step.hook, fo.hook(step.hook), env, timeout=fo.hook_timeout)
        step.status, step.detail = (DONE if result.ok else FAILED), result.detail


def _flip(step: Step, switch: SymlinkSwitch | FlagFileSwitch, readonly: bool) -> None:
    try:
        changed, detail = switch.apply(readonly)
    except OSError as exc:
        step.status, step.detail = FAILED, f"{type(exc).__name__}: {exc}"
        return
    step.status, step.detail = (DONE if changed else UNCHANGED), detail


def _reload(step: Step, command_line: str, timeout: float) -> None:
    """Run reload_command as a hook runs (README: "runs the same way"): bounded by
    [failover] hook_timeout seconds (before, a hard-coded 120 s that ignored it)."""
    register_command_secrets(command_line)
    try:
        done = command.run(shlex.split(command_line), env=None, timeout=timeout)
    except (OSError, ValueError) as exc:
        step.status, step.detail = FAILED, redact(f"could not run: {exc}")
        return
    output = shown_output(done.output, command_line)
    if len(output) > OUTPUT_TAIL:
        output = "..." + output[-OUTPUT_TAIL:]
    shown = f"output: {output}" if output else "no output"
    if done.timed_out:
        step.status = FAILED
        step.detail = f"still running after {timeout:g}s (hook_timeout); killed; {shown}"
    elif done.returncode != 0:
        step.status, step.detail = FAILED, f"exit {done.returncode}; {shown}"
    else:
        step.status, step.detail = DONE, "exit 0" + (f"; {shown}" if output else "")


def account(steps: list[Step], *, undo: str, again: str) -> list[str]:
    """What was done, what was not, and how to finish or undo: for a run that failed part-way."""
    done = [f"{s.name}: {s.detail}" for s in steps if s.status in (DONE, UNCHANGED)]
    missing = [s for s in steps if s.failed]
    lines = ["  done:      " + ("; ".join(done) or "nothing")]
    lines += [f"  NOT done:  {s.name}: {s.detail}" for s in missing]
    lines += [f"  to finish: {s.name}: {s.finish}" for s in missing if s.finish]
    lines.append(f"  or fix the cause and run `{again}` again (repeating it is harmless)")
    lines.append(f"  to undo:   {undo}")
    return lines
