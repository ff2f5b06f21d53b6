"""The switchover's bounded waits for the replica and the file mirror to catch up.

A switchover flips only once the replica has replayed the primary's WAL position
and a heartbeat written after the switchover began has arrived fresh with nothing
pending and the target in sync (replica.wait_replayed, heartbeat.judge); each wait
ends at the run's deadline (switchover_timeout) and becomes a Check. A dry run
previews the same checks without waiting, as warnings (what the run would wait
for). Time comes from an injectable Clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mirrord.config import Config, FailoverConfig
from mirrord.failover import heartbeat, replica
from mirrord.failover.result import WARN, Check


@dataclass
class Clock:
    """Injectable time: wall clock for ages, monotonic for deadlines, sleep for waits."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


QUIET_WINDOW = 1.0   # seconds the primary must write nothing in, right before the flip


def timeouts(fo: FailoverConfig) -> dict:
    """The connect and statement timeouts (seconds) of every PostgreSQL session."""
    return {"connect_timeout": fo.connect_timeout, "statement_timeout": fo.statement_timeout}


class Waits:
    """The checks of one run that look at the replica's progress and the heartbeat, with
    the run's `cfg` ([failover] must be set) and `clock`."""

    def __init__(self, cfg: Config, clock: Clock):
        assert cfg.failover is not None
        self.cfg = cfg
        self.fo: FailoverConfig = cfg.failover
        self.clock = clock

    def fetch_heartbeat(self) -> tuple[heartbeat.Heartbeat | None, str]:
        """The heartbeat on heartbeat_target and an error text (heartbeat.fetch); (None, "")
        when no heartbeat_target is set."""
        if not self.fo.heartbeat_target:
            return None, ""
        return heartbeat.fetch(self.cfg, self.fo.heartbeat_target)

    def heartbeat_now(self, *, severity: str, max_age: float | None = None) -> list[Check]:
        """The heartbeat's checks as it stands now (no wait); `max_age` in seconds defaults
        to max_heartbeat_age. One passing 'not checked' when heartbeat_target is not set."""
        if not self.fo.heartbeat_target:
            return [Check("heartbeat.age", True, "not checked", "-",
                          data={"reason": "heartbeat_target is not set"})]
        hb, error = self.fetch_heartbeat()
        return heartbeat.judge(hb, error, target=self.fo.heartbeat_target, now=self.clock.wall(),
                               max_age=self.fo.max_heartbeat_age if max_age is None else max_age,
                               severity=severity, max_skew=self.fo.max_clock_skew)

    def preview(self, target: int) -> list[Check]:
        """A dry run's view of the waits: whether the replica has replayed `target` (an LSN)
        already and the heartbeat now, both as warnings."""
        ok, replayed, error = replica.wait_replayed(self.fo.database, target,
                                                    deadline=self.clock.monotonic(),
                                                    **timeouts(self.fo))
        limit = f"would wait up to {self.fo.switchover_timeout:g}s"
        checks = [Check("switchover.replica_caught_up", ok,
                        f"replayed {_lsn(replayed)} of {replica.format_lsn(target)}", limit,
                        error or "not yet caught up", severity=WARN)]
        return checks + self.heartbeat_now(severity=WARN)

    def replica(self, target: int, deadline: float) -> Check:
        """Wait until the replica has replayed `target` (an LSN) or the monotonic `deadline`
        (seconds) passed; the Check says how long it waited and how far behind it stayed."""
        t0 = self.clock.monotonic()
        ok, replayed, error = replica.wait_replayed(
            self.fo.database, target, deadline=deadline, monotonic=self.clock.monotonic,
            sleep=self.clock.sleep, **timeouts(self.fo))
        waited = self.clock.monotonic() - t0
        behind = "" if replayed is None else f", {max(0, target - replayed)} B behind"
        return Check("switchover.replica_caught_up", ok,
                     f"replayed {_lsn(replayed)} of {replica.format_lsn(target)} "
                     f"after {waited:.1f}s{'' if ok else behind}",
                     f"within switchover_timeout {self.fo.switchover_timeout:g}s",
                     error or "the replica did not replay the primary's WAL position in time",
                     data={"waited": round(waited, 3), "target": replica.format_lsn(target),
                           "replayed": _lsn(replayed)})

    def primary_quiet(self, target: int, deadline: float) -> Check:
        """The primary wrote no WAL since `target` (the position the replica was waited
        for): its position is read again; where it moved on, the replica is waited for
        up to it and the primary looked at again, until it stays put or the monotonic
        `deadline` passes (a FAIL: still committing). The README's step 2 says to stop
        writes first; a switchover run while the application still wrote flipped and
        said done, and the replica lacked what was committed after the position it had
        waited for (a breaker: 20 rows a second, 10 missing). An idle primary's own
        WAL (a checkpoint, a standby snapshot) moves it once, and the next look finds
        it still. Each look comes QUIET_WINDOW seconds after the position it compares
        with was read (or replayed), so that a write committed meanwhile shows."""
        t0, start, lsn = self.clock.monotonic(), target, target
        while True:
            self.clock.sleep(QUIET_WINDOW)
            _, lsn = replica.primary_position(self.fo.primary_database, **timeouts(self.fo))
            if lsn is not None and lsn <= target:
                break
            if lsn is None or self.clock.monotonic() >= deadline:
                break
            ok, _replayed, _error = replica.wait_replayed(
                self.fo.database, lsn, deadline=deadline, monotonic=self.clock.monotonic,
                sleep=self.clock.sleep, **timeouts(self.fo))
            if not ok:
                break
            target = lsn
        waited = self.clock.monotonic() - t0
        quiet = lsn is not None and lsn <= target
        value = (f"no WAL since {replica.format_lsn(target)}" if quiet else
                 "primary unreachable" if lsn is None else
                 f"WAL moved from {replica.format_lsn(start)} to {replica.format_lsn(lsn)}")
        return Check("switchover.primary_quiet", quiet, f"{value} after {waited:.1f}s",
                     "no write on the primary while switching over",
                     "the primary is still committing (or could not be read): stop writes "
                     "on the primary first (maintenance page), then run switchover again",
                     data={"waited": round(waited, 3), "from": replica.format_lsn(start),
                           "at": _lsn(lsn)})

    def heartbeat(self, first: tuple[heartbeat.Heartbeat | None, str],
                  deadline: float) -> list[Check]:
        """Wait for a heartbeat newer than the one seen at the start, fresh, with 0 pending
        and the target in sync (every heartbeat.judge check passing)."""
        if not self.fo.heartbeat_target:
            return self.heartbeat_now(severity=WARN)
        seen = first[0].unix if first[0] is not None else None
        t0 = self.clock.monotonic()
        while True:
            hb, error = self.fetch_heartbeat()
            checks = heartbeat.judge(hb, error, target=self.fo.heartbeat_target,
                                     now=self.clock.wall(), max_age=self.fo.max_heartbeat_age,
                                     max_skew=self.fo.max_clock_skew)
            # "new" is a different stamp, not a later one: stamps are the primary's clock,
            # which NTP may have stepped back since the first one (then none is ever later)
            new = hb is not None and (seen is None or hb.unix != seen)
            if (new and all(c.ok for c in checks)) or self.clock.monotonic() >= deadline:
                break
            self.clock.sleep(min(1.0, max(0.1, (hb.interval if hb else 1.0) / 4)))
        waited = self.clock.monotonic() - t0
        checks.append(Check("heartbeat.new", new, f"{'yes' if new else 'no'} after {waited:.1f}s",
                            "a heartbeat written after the switchover began",
                            "no new heartbeat arrived before switchover_timeout: "
                            "is mirrord running on the primary?",
                            data={"waited": round(waited, 3)}))
        return checks


def _lsn(value: int | None) -> str:
    return "nothing" if value is None else replica.format_lsn(value)
