"""What `failover --force` and `failback --force` accept, and how a refusal says so.

--force covers the checks an operator may knowingly accept (the README, the failover
runbook): the replica's (the primary is gone, so its WAL receiver is down and replay
stops; at failback, the mirror's database promoted, or another cluster than the primary:
replica_judge.same_system), a mirror root missing or empty,
and a pre hook's refusal. Never the switch's own prechecks (app.*), which a flip
cannot get past, nor the primary unreachable at failback. switchover has no --force.
"""

from __future__ import annotations

from mirrord.failover.heartbeat import MIRROR_ROOT
from mirrord.failover.result import Check


def forceable(check: Check) -> bool:
    """True for a failed check --force accepts: the replica's (at failover the primary
    is gone, so its WAL receiver is down and replay stops; at failback, the mirror's
    database promoted: replica_judge.for_failback, or another cluster than the primary:
    replica_judge.same_system) and a mirror root missing or empty
    (README, the failover runbook: the operator may accept serving no uploads), and a
    reload command or hook whose program is missing here (hooks.program_checks: the flip
    works, the operator reloads by hand). The pre
    hook's refusal is forced where it runs (Procedure._pre_hook)."""
    return (check.name.startswith(("replica.", "program."))
            or check.data.get(MIRROR_ROOT) == "missing")


def force_hint(command: str, refusals: list[Check]) -> str:
    """What --force would do for these refusals, as the end of the refusal line: accept
    them all, or only some (a breaker: "rerun with --force to accept" beside a refusal
    --force does not cover, such as the primary unreachable at failback, and the rerun
    was refused again). Empty for switchover, which has no --force."""
    if command == "switchover":
        return ""
    covered = [c.name for c in refusals if forceable(c) or c.name.startswith("hook.")]
    if not covered:
        return ""
    if len(covered) == len(refusals):
        return "; rerun with --force to accept"
    others = ", ".join(c.name for c in refusals if c.name not in covered)
    return f"; --force would accept {', '.join(covered)} but not {others}"
