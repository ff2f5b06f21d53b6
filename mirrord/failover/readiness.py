"""The checks `mirrord failover` runs, split into measuring and judging.

`measure` talks to the replica, reads the file mirror's heartbeat and looks at
the app config; `judge` turns one Measurement into Checks for given limits
(pure and cheap). `mirrord failover` does both at once; `mirrord health`
measures at most once per [health] interval and judges every request with its
own limits, so /ready answers with the same checks, code and words as
`mirrord failover --dry-run`.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass

from mirrord import locks
from mirrord.config import Config
from mirrord.failover import heartbeat, hooks, replica, switched
from mirrord.failover.appconfig import FlagFileSwitch, SymlinkSwitch
from mirrord.failover.result import FAIL, WARN, Check


@dataclass(frozen=True)
class Measurement:
    replica: replica.Reading
    heartbeat: heartbeat.Heartbeat | None
    heartbeat_error: str          # why there is no heartbeat (unreadable target, bad file)
    app: tuple[Check, ...]        # the app config prechecks for the read-only direction
    taken: float                  # Unix time (this host) when the measurement began
    switched: dict | None = None  # this host has switched (switched.state): action, at
    running: int | None = None    # pid of another process holding failover.lock (-1: ?)


def measure(cfg: Config, switch: SymlinkSwitch | FlagFileSwitch, *,
            wall=time.time) -> Measurement:
    """One look at everything failover depends on; bounded by [failover] connect_timeout
    and statement_timeout for the database and the heartbeat target alike (read side by
    side: heartbeat.deadline), never raises for an unreachable service."""
    fo = cfg.failover
    assert fo is not None
    taken, until = wall(), time.monotonic() + heartbeat.deadline(fo)
    # the heartbeat is read while the replica answers: both within the same budget
    pending = heartbeat.start(cfg, fo.heartbeat_target) if fo.heartbeat_target else None
    reading = replica.read_replica(fo.database, connect_timeout=fo.connect_timeout,
                                   statement_timeout=fo.statement_timeout)
    hb, error = (heartbeat.result(pending, fo.heartbeat_target, until) if pending
                 else (None, ""))
    return Measurement(reading, hb, error, tuple(switch.precheck(True)), taken,
                       switched.state(switch), running(cfg))


def running(cfg: Config) -> int | None:
    """The pid of another process running failover, switchover or failback on this host
    (holding state_dir/failover.lock, read from /proc/locks: locks.holder), -1 when the
    holder is unknown; None when none runs (or this process holds it: its own checks)."""
    try:
        pid = locks.holder(cfg.mirrord.state_dir, locks.FAILOVER)
    except OSError:
        return None
    return None if pid is None or pid == os.getpid() else pid


def running_check(pid: int, path) -> Check:
    """switch.running: a switch under way refuses a new one (exit 3), so /ready is 503
    while it runs (README, Readiness), a warning once this host has switched."""
    who = f"pid {pid}" if pid > 0 else "an unknown process"
    return Check("switch.running", False, who, "none running",
                 f"a failover, switchover or failback is running on this host ({who} holds "
                 f"{path}): a new one is refused until it ends", data={"pid": pid})


def judge(m: Measurement, cfg: Config, *, now: float, max_replay_lag: float | None = None,
          max_heartbeat_age: float | None = None) -> list[Check]:
    """The failover checks for measurement `m` at Unix time `now` (this host's clock).

    Limits are seconds and default to [failover]; a stale heartbeat (or one saying the
    mirror has changes pending or is not in sync: heartbeat.judge) is only a warning
    (when the primary dies its heartbeat stops, exactly when the mirror must take over)
    unless `max_heartbeat_age` is given, which makes the heartbeat checks strict.

    When this host has already switched (m.switched: the app config is read-only, no
    failback since), a check that would refuse is a warning instead, saying so, and a
    first check `switch.state` names the switch: the mirror serves the site, and
    repeating the failover is harmless (README, Readiness; before, /ready stayed 503
    for the whole primary outage, so keepalived never gave the mirror the IP)."""
    fo = cfg.failover
    assert fo is not None
    lag = fo.max_replay_lag if max_replay_lag is None else max_replay_lag
    checks = replica.judge_reading(m.replica, max_lag=lag, max_skew=fo.max_clock_skew)
    if not fo.heartbeat_target:
        checks.append(Check("heartbeat.age", True, "not checked", "-",
                            data={"reason": "heartbeat_target is not set"}))
    else:
        strict = max_heartbeat_age is not None
        checks += heartbeat.judge(m.heartbeat, m.heartbeat_error, target=fo.heartbeat_target,
                                  now=now, severity=FAIL if strict else WARN,
                                  max_age=max_heartbeat_age if strict else fo.max_heartbeat_age,
                                  max_skew=fo.max_clock_skew)
    checks += [copy.deepcopy(c) for c in m.app]
    checks += hooks.program_checks(fo, "failover")   # a reload or hook that cannot run here
    if m.running is not None:
        checks.append(running_check(m.running, cfg.mirrord.state_dir / locks.FAILOVER))
    if m.switched:
        return [_switched_check(m.switched)] + [_as_warning(c, m.switched) for c in checks]
    return checks


def _switched_check(sw: dict) -> Check:
    return Check("switch.state", True, f"switched: {sw['action']} at {sw['at']}", "-",
                 data=dict(sw))


def _as_warning(check: Check, sw: dict) -> Check:
    """`check` as a warning once this host has switched, unless it says the mirror itself
    cannot serve the site: its database unreachable (replica.connect), its file mirror's
    root missing (heartbeat, MIRROR_ROOT), the read-only config missing (app.target). A
    breaker stopped the mirror's PostgreSQL, or removed the mirror and readonly.php, after
    a failover: /ready stayed 200 and keepalived kept the IP on a dead site. What says the
    primary is gone (the replica not fed, its lag, a stale heartbeat) is expected then."""
    if not check.refuses or _cannot_serve(check):
        return check
    check.severity = WARN
    check.message += (f" (this host has already switched: {sw['action']} at {sw['at']}; "
                      "repeating the failover is harmless")
    if check.name == "replica.in_recovery":   # for_failback refuses it: say so before
        check.message += "; failback refuses a database that is not a standby, unless --force"
    check.message += ")"
    return check


def _cannot_serve(check: Check) -> bool:
    if check.name in ("replica.connect", "app.target"):
        return True
    return check.name.startswith("heartbeat.") and \
        (check.data or {}).get(heartbeat.MIRROR_ROOT) == "missing"


def ready(checks: list[Check]) -> bool:
    """True when failover would go ahead without --force: no check refuses."""
    return not any(c.refuses for c in checks)
