"""Times taken on two hosts' clocks, compared with a tolerance for clock skew.

The heartbeat is stamped by the primary's clock and judged by the mirror
host's; a replayed commit is stamped by the primary and judged by the
replica's now(). NTP-synchronised hosts agree within milliseconds (chrony's
`makestep` default steps the clock when it is 1 s off), so [failover]
max_clock_skew (default 5 s) is tolerated: a stamp up to that far in the
future counts as age 0. A stamp further in the future is flagged as clock
skew with the measured amount instead of passing as fresh (it once read
`ok heartbeat.age value=-3599.5s`). A clock running behind makes stamps look
older, which fails the age limits: the safe direction. Where a remote clock
can be read directly (a database's now()), `offset` measures the skew in
either direction, bounded by half the round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirrord.failover.result import WARN, Check

DEFAULT_MAX_SKEW = 5.0


@dataclass(frozen=True)
class Age:
    seconds: float | None   # None when the stamp is too far in the future to judge
    ahead: float            # seconds the stamp is in the future of `now` (0 when not)

    def skewed(self) -> bool:
        return self.seconds is None


def age(now: float, stamp: float, max_skew: float = DEFAULT_MAX_SKEW) -> Age:
    """How old `stamp` is at `now` (both Unix seconds, from two hosts' clocks)."""
    delta = now - stamp
    if delta >= 0:
        return Age(delta, 0.0)
    return Age(0.0 if -delta <= max_skew else None, -delta)


def offset(remote: float, sent: float, received: float) -> tuple[float, float]:
    """(skew, uncertainty) of a remote clock read between local `sent` and `received`:
    positive skew means the remote clock is ahead (NTP's offset, one sample)."""
    return remote - (sent + received) / 2, (received - sent) / 2


def skew_text(ahead: float, max_skew: float, *, whose: str, judge: str) -> str:
    return (f"clock skew: {whose} is dated {ahead:.1f}s in the future of {judge} "
            f"(max_clock_skew {max_skew:g}s); its age cannot be judged: check NTP on both "
            "hosts (chronyc tracking, timedatectl)")


def clock_check(name: str, where: str, remote: float, sent: float, received: float,
                max_skew: float) -> Check:
    """A remote clock (read between local `sent` and `received`, Unix seconds) against this
    host's: flagged (WARN) when it is more than `max_skew` off in either direction."""
    off, unc = offset(float(remote), sent, received)
    ok = abs(off) - unc <= max_skew
    side = "ahead of" if off > 0 else "behind"
    return Check(name, ok, f"{off:+.3f}s (±{unc:.3f}s)", f"±{max_skew:g}s",
                 f"clock skew: {where}'s clock is {abs(off):.1f}s {side} this host's "
                 f"(max_clock_skew {max_skew:g}s): heartbeat ages and replay lag are off by as "
                 "much; check NTP on both hosts (chronyc tracking, timedatectl)",
                 severity=WARN, data={"offset": round(off, 6), "uncertainty": round(unc, 6)})


def ahead_warning(name: str, now: float, stamp: float, max_skew: float, *, whose: str,
                  judge: str) -> list[Check]:
    """[] when `stamp` (Unix seconds, another host's clock) is not more than `max_skew`
    ahead of `now`; else one WARN check with the measured skew. For a stamp whose age
    decides nothing (an idle primary's last commit) but whose clock still matters."""
    ahead = age(now, stamp, max_skew)
    if not ahead.skewed():
        return []
    return [Check(name, False, f"dated {ahead.ahead:.1f}s ahead", f"±{max_skew:g}s",
                  skew_text(ahead.ahead, max_skew, whose=whose, judge=judge), severity=WARN,
                  data={"ahead": round(ahead.ahead, 3)})]
