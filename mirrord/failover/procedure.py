"""failover, switchover and failback: check, plan, change, report, log.

Every command runs all of its checks first and prints one line per check
(ok / FAIL / WARN, measured value, limit). A failed check refuses the run
(FailoverRefused, exit 3) before anything changes, unless --force covers it
(failover: the replica checks, a mirror root missing or empty, and the pre hook's
refusal; failback: the mirror's database promoted or another cluster than the
primary, and the pre hook's refusal;
force.py). --dry-run stops after printing
the plan. Otherwise the steps run (steps.py) and any failure after the flip
began gives exit 1 with an account of what was done and what was not. A
switchover first waits for the replica and the file mirror to catch up
(switchover_waits.py).

Every run, refused or not, appends one JSON line to state_dir/failover.log (a dry
run only where state_dir exists: it makes nothing, _finish).
Nothing here prints or logs a conninfo: replica.describe() shows host, port,
dbname and user only, and every log line is passed through redact().
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import sys
from typing import Iterator, TextIO

from mirrord import locks
from mirrord.config import Config, FailoverConfig
from mirrord.config.values import shown_command
from mirrord.errors import ConfigError, ConfigProblem, FailoverRefused, StateDirError
from mirrord.failover import appconfig, hooks, interrupt, readiness, replica, steps
from mirrord.failover.force import force_hint, forceable
from mirrord.failover.result import LOG_NAME, PLANNED, Check, Run, Step, append_log
from mirrord.failover.switchover_waits import Clock, Waits, timeouts
from mirrord.cli import output as cli_output
from mirrord.cli.output import drop_stdout
from mirrord.logsetup import shown_line


class Procedure:
    def __init__(self, cfg: Config, *, out: TextIO | None = None, clock: Clock | None = None):
        if cfg.failover is None:
            raise ConfigError([ConfigProblem(str(cfg.path), "failover", "",
                                             "this command needs a [failover] section")])
        self.cfg: Config = cfg
        self.fo: FailoverConfig = cfg.failover
        self.out = out or sys.stdout
        # fd 1 closed at start: sys.stdout is /dev/null (cli.dispatch), the loss said once
        self._closed_at_start = out is None and cli_output.stdout_closed_at_start
        self.clock = clock or Clock()
        self.switch = appconfig.from_config(self.fo, cfg.mirrord.state_dir)
        self.waits = Waits(cfg, self.clock)
        self._run: Run | None = None   # the run under way (for _out's note on lost output)
        for conninfo in (self.fo.database, self.fo.primary_database):
            replica.protect(conninfo)

    # ------------------------------------------------------------ commands
    def failover(self, *, dry_run: bool = False, force: bool = False) -> int:
        """The primary is gone: check the replica, warn about the file mirror, flip."""
        return self._guarded(Run("failover", dry_run, force), self._failover)

    def switchover(self, *, dry_run: bool = False) -> int:
        """Planned: the primary is up; wait until replica and file mirror have everything."""
        return self._guarded(Run("switchover", dry_run), self._switchover)

    def failback(self, *, dry_run: bool = False, force: bool = False) -> int:
        """Back to the read-write configuration: the primary must be reachable (if
        configured) and the mirror's database still a standby (unless --force)."""
        return self._guarded(Run("failback", dry_run, force), self._failback)

    def _guarded(self, run: Run, body) -> int:
        """`body(run)` under the lock, SIGINT and SIGTERM raising interrupt.Interrupted:
        then the account, the failover.log line and exit 128 + the signal (interrupt.py)."""
        with self._exclusive(run), interrupt.raising():
            try:
                run.phase, self._run = "checks", run
                return body(run)
            except interrupt.Interrupted as exc:
                return self._interrupted(run, exc)

    def _interrupted(self, run: Run, exc: interrupt.Interrupted) -> int:
        where = interrupt.mark(run, exc)
        run.notes.append(f"interrupted by {exc.name} {where}")
        self._out(f"mirrord {run.command}: INTERRUPTED by {exc.name} (exit {exc.exit_code}) "
                  f"{where}")
        if any(s.status != PLANNED for s in run.steps):
            for step in run.steps:
                self._out(step.line())
            undo = self._command("failback" if run.command != "failback" else "failover")
            for line in steps.account(run.steps, undo=undo, again=self._again(run)):
                self._out(line)
        return self._finish(run, "interrupted", exc.exit_code)

    @contextlib.contextmanager
    def _exclusive(self, run: Run) -> Iterator[None]:
        """One changing run at a time on this host (a dry run changes nothing: no lock).
        A run refused because another holds the lock gets its failover.log line too
        (check `switch.running`; before, it left none: a breaker)."""
        if run.dry_run:
            yield
            return
        state_dir = self.cfg.mirrord.state_dir
        try:
            lock = locks.take(state_dir, locks.FAILOVER, mode=0o600)
        except locks.Busy as exc:
            run.checks.append(readiness.running_check(exc.pid or -1, exc.path))
            self._finish(run, "refused", 3)
            raise FailoverRefused("another failover, switchover or failback is running "
                                  f"(pid {exc.pid or '?'} holds {exc.path})") from None
        except StateDirError as exc:   # a precondition of the run, as for the app's files: 3
            raise FailoverRefused(f"[mirrord] state_dir {exc}; state_dir must be writable by "
                                  "the user running this command") from None
        except OSError as exc:   # e.g. state_dir not writable by this user: nothing changed
            raise FailoverRefused(f"cannot take {state_dir / locks.FAILOVER}: "
                                  f"{exc.strerror or exc}; [mirrord] state_dir must be "
                                  "writable by the user running this command") from None
        with lock:
            yield

    def failover_checks(self, *, max_replay_lag: float | None = None,
                        max_heartbeat_age: float | None = None) -> list[Check]:
        """Every check `mirrord failover` runs (readiness.measure, then readiness.judge);
        limits in seconds default to [failover]."""
        m = readiness.measure(self.cfg, self.switch, wall=self.clock.wall)
        return readiness.judge(m, self.cfg, now=self.clock.wall(),
                               max_replay_lag=max_replay_lag, max_heartbeat_age=max_heartbeat_age)

    def _failover(self, run: Run) -> int:
        run.checks += self.failover_checks()
        self._forced(run)
        return self._conclude(run, readonly=True, undo=self._command("failback"))

    def _switchover(self, run: Run) -> int:
        dry_run = run.dry_run
        if not self.fo.primary_database:
            raise ConfigError([ConfigProblem(str(self.cfg.path), "failover", "primary_database",
                                             "is required by switchover (the primary's conninfo)")])
        first_hb = self.waits.fetch_heartbeat()
        run.checks += self._replica_checks()
        run.checks += self.switch.precheck(True)
        primary_checks, target = replica.primary_position(self.fo.primary_database,
                                                          **self._primary_args())
        run.checks += primary_checks
        run.checks += replica.same_system(run.checks, failback=False)   # before any wait
        run.checks += hooks.program_checks(self.fo, "switchover")
        if not run.refusals and target is not None:
            if dry_run:
                run.checks += self.waits.preview(target)
            else:
                self._out(f"mirrord switchover: waiting (at most {self.fo.switchover_timeout:g}s) "
                          "for the replica and the file mirror to catch up")
                deadline = self.clock.monotonic() + self.fo.switchover_timeout
                run.checks.append(self.waits.replica(target, deadline))
                if run.checks[-1].ok:
                    run.checks += self.waits.heartbeat(first_hb, deadline)
                if not run.refusals:   # last, right before the flip: no write since
                    run.checks.append(self.waits.primary_quiet(target, deadline))
        return self._conclude(run, readonly=True, undo=self._command("failback"))

    def _failback(self, run: Run) -> int:
        if self.fo.primary_database:
            run.checks += replica.primary_position(self.fo.primary_database,
                                                   **self._primary_args())[0]
        else:
            run.checks.append(Check("primary.connect", True, "not checked", "-",
                                    data={"reason": "primary_database is not set"}))
        run.checks += replica.for_failback(self._replica_checks())
        run.checks += replica.same_system(run.checks, failback=True)
        run.checks += self.switch.precheck(False)
        run.checks += hooks.program_checks(self.fo, "failback")
        self._forced(run)
        return self._conclude(run, readonly=False, undo=self._command("failover"))

    @staticmethod
    def _forced(run: Run) -> None:
        """Mark the refusing checks --force accepts (forceable) as forced; a warning
        refuses nothing, so it is never marked (failover.log said "forced" of warnings)."""
        if run.force:
            for check in run.checks:
                if forceable(check) and check.refuses:
                    check.forced = True

    # ------------------------------------------------------------ checks
    def _primary_args(self) -> dict:
        return {**timeouts(self.fo), "max_skew": self.fo.max_clock_skew, "wall": self.clock.wall}

    def _replica_checks(self, max_lag: float | None = None) -> list[Check]:
        lag = self.fo.max_replay_lag if max_lag is None else max_lag
        return replica.check_replica(self.fo.database, max_lag=lag,
                                     max_skew=self.fo.max_clock_skew, **timeouts(self.fo))

    # ------------------------------------------------------------ conclusion
    def _conclude(self, run: Run, *, readonly: bool, undo: str) -> int:
        if run.dry_run:
            self._dry_lock(run)
        self._out(f"mirrord {run.command}: checks")
        for check in run.checks:
            self._out(check.line())
        pre = f"pre_{run.command}"
        run.steps = steps.build_plan(self.fo, self.switch, readonly=readonly,
                                     post_hook=f"post_{run.command}")
        if (run.refusals or run.dry_run) and self.fo.hook(pre):   # listed, not run
            shown = shown_command(self.fo.hook(pre))
            run.steps.insert(0, Step(f"hook {pre}", f"run {shown} (a non-zero exit refuses "
                                     "the switch)", kind="hook", hook=pre))
        if run.refusals:
            return self._refuse(run)
        if run.dry_run:
            self._out(f"mirrord {run.command}: plan (dry run: nothing was changed)")
            for step in run.steps:
                self._out(step.line())
            return self._finish(run, "dry-run", 0)
        # as the user flipping, before anything runs: state_dir and the app's dir take a file
        writable = [self.switch.state_dir_check(readonly), *self.switch.writable(readonly)]
        for check in writable:
            self._out(check.line())
        run.checks += writable
        if run.refusals:
            return self._refuse(run)
        env = self._hook_env(run)
        run.phase = "pre hook"
        if self.fo.hook(pre) and self._pre_hook(run, pre, env).refuses:
            return self._refuse(run)
        run.phase = "steps"
        self._out(f"mirrord {run.command}: steps")
        self.switch.action = run.command if readonly else ""
        steps.execute(run.steps, self.fo, self.switch, readonly=readonly, hook_env=env)
        for step in run.steps:
            self._out(step.line())
        if any(step.failed for step in run.steps):
            self._out(f"mirrord {run.command}: INCOMPLETE (exit 1): a step failed after the "
                      "flip began")
            for line in steps.account(run.steps, undo=undo, again=self._again(run)):
                self._out(line)
            return self._finish(run, "failed", 1)
        self._out(f"mirrord {run.command}: done")
        return self._finish(run, "done", 0)

    def _dry_lock(self, run: Run) -> None:
        """A dry run takes no lock, but the real run is refused while another holds it:
        switch.running refuses the dry run too (exit 3), even once this host has switched,
        where /ready lists it only as a warning (the mirror serves the site meanwhile). A
        dry run said 0 beside a running failover whose failback was then refused (a trial)."""
        run.checks = [c for c in run.checks if c.name != "switch.running"]
        pid = readiness.running(self.cfg)
        if pid is not None:
            run.checks.append(readiness.running_check(
                pid, self.cfg.mirrord.state_dir / locks.FAILOVER))

    def _again(self, run: Run) -> str:
        """The command line to run again: with the config and the flags this run needed
        (a forced failover's advice once said `mirrord failover`, which the primary still
        down then refused: exit 3, a breaker)."""
        return self._command(run.command, force=run.force)

    def _command(self, command: str, *, force: bool = False) -> str:
        config = f" -c {shlex.quote(str(self.cfg.path))}" if self.cfg.path else ""
        return f"mirrord{config} {command}" + (" --force" if force else "")

    def _hook_env(self, run: Run) -> dict[str, str]:
        """MIRRORD_* for the hooks, from the measurements this run's checks made."""
        data = {c.name: c.data for c in run.checks}
        return hooks.environment(action=run.command, dry_run=run.dry_run, forced=run.force,
                                 replay_lag=data.get("replica.replay_lag", {}).get("seconds"),
                                 heartbeat_age=data.get("heartbeat.age", {}).get("age"), hook="")

    def _pre_hook(self, run: Run, name: str, env: dict[str, str]) -> Check:
        """Run the pre hook as one more check: non-zero refuses (exit 3) unless --force."""
        result = hooks.run(name, self.fo.hook(name), {**env, "MIRRORD_HOOK": name},
                           timeout=self.fo.hook_timeout)
        check = Check(f"hook.{name}", result.ok, result.detail, "exit 0",
                      f"the {name} hook refused the switch", forced=run.force and not result.ok,
                      data={"exit": result.returncode, "output": result.output})
        run.checks.append(check)
        self._out(check.line())
        return check

    def _refuse(self, run: Run) -> int:
        self._out(f"mirrord {run.command}: plan (not carried out)")
        for step in run.steps:
            self._out(step.line())
        refusals = run.refusals
        self._finish(run, "refused", 3)
        raise FailoverRefused("; ".join(c.summary() for c in refusals)
                              + force_hint(run.command, refusals))

    def _finish(self, run: Run, outcome: str, code: int) -> int:
        """Record the outcome and append the run's failover.log line. A dry run changes
        nothing, so it makes no state_dir where there is none (it may run as another
        user, README): no line then, and a note on stderr saying so."""
        run.outcome, run.exit_code = outcome, code
        state_dir = self.cfg.mirrord.state_dir
        if run.dry_run and not state_dir.is_dir():
            print(f"mirrord: note: no line in {state_dir / LOG_NAME} for this dry run: "
                  f"[mirrord] state_dir {state_dir} does not exist, and a dry run makes "
                  "nothing", file=sys.stderr)
            return code
        try:
            append_log(state_dir, run, self.cfg.mirrord.hostname)
        except OSError as exc:
            print(f"mirrord: warning: cannot append to {self.cfg.mirrord.state_dir / LOG_NAME}: "
                  f"{exc}", file=sys.stderr)
        return code

    def _out(self, line: str) -> None:
        """Print a line; never raises: output that cannot be written (stdout gone: EPIPE
        from a dropped session or `| head`, EIO, ENOSPC) must not stop the run nor its
        failover.log line (a breaker: the flip was made, then exit 1 and no line). The
        rest of the output is dropped, the loss said once on stderr and in the log."""
        if self._closed_at_start:   # `mirrord failover >&-`: every line went nowhere, unsaid
            self._closed_at_start = False
            self._lost_output(OSError(errno.EBADF, "standard output was closed at start"))
        try:
            print(shown_line(line), file=self.out, flush=True)
        except (OSError, ValueError) as exc:   # ValueError: the stream was closed
            self._lost_output(exc)

    def _lost_output(self, exc: Exception) -> None:
        self.out = open(os.devnull, "w")  # noqa: SIM115 - lives until the process exits
        if self._run is not None:
            self._run.notes.append(f"output lost: {type(exc).__name__}: {exc}")
        drop_stdout()   # the exit flush too
        with contextlib.suppress(OSError, ValueError):
            print(f"mirrord: warning: cannot write the output ({type(exc).__name__}: "
                  f"{exc}); the run goes on, see {self.cfg.mirrord.state_dir / LOG_NAME}",
                  file=sys.stderr, flush=True)
