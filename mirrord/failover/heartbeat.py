"""The file mirror's heartbeat, read from the heartbeat target and judged.

The document type itself (fields, parse) is mirrord.heartbeat, shared with the
daemon that writes it.

The daemon on the primary writes `<target root>/.mirrord/heartbeat.json`
every heartbeat_interval: when it was written, by which host, and how many
changes were not yet shipped to that target. Failover only reads it, through
the target interface opened read-only (Target.open(readonly=True)), never writes
the mirror: no sweep of the primary's uploads in flight, no root made where a
mount is missing. Age is measured against this
host's clock, a comparison across two hosts' clocks: skew.py tolerates
[failover] max_clock_skew and flags a heartbeat dated further in the future.
"""

from __future__ import annotations

from mirrord import heartbeat as heartbeat_doc, targets
from mirrord.config import Config
from mirrord.errors import MirrordError, MirrorRootMissing
from mirrord.failover import skew
from mirrord.failover.result import FAIL, Check

HEARTBEAT = heartbeat_doc.NAME
Heartbeat = heartbeat_doc.Heartbeat
parse = heartbeat_doc.parse


def read(cfg: Config, name: str) -> Heartbeat | None:
    """The heartbeat on target `name`, None when absent; MirrordError/ValueError on trouble
    (MirrorRootMissing when the target's root does not exist, or is empty: a mount point
    whose file system is not mounted, mirrord.targets.root_check). The target is
    opened read-only (Target.open): this runs on the mirror host while the primary's
    daemon may be writing, so nothing is swept, made or locked there."""
    target = targets.create(cfg.targets[name])
    try:
        target.open(readonly=True)
        data = target.read_meta(HEARTBEAT)
    finally:
        target.close()
    if data is None and target.root_empty:   # an unmounted mount point (targets.root_check)
        raise MirrorRootMissing(f"{target.describe()}: the mirror root is empty, no mirrored "
                                f"file and no heartbeat (is its file system mounted?)")
    return None if data is None else parse(data)


def fetch(cfg: Config, name: str) -> tuple[Heartbeat | None, str]:
    """(heartbeat, error text): never raises for an unreachable target or a bad file."""
    try:
        return read(cfg, name), ""
    except (MirrordError, ValueError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def judge(hb: Heartbeat | None, error: str, *, target: str, now: float, max_age: float,
          severity: str = FAIL, max_skew: float = skew.DEFAULT_MAX_SKEW) -> list[Check]:
    """Age and pending checks; `severity` is WARN for failover (the primary is gone), but
    a mirror root that does not exist (MirrorRootMissing: a mount missing) always FAILs.

    `now` is this host's Unix time in seconds; a heartbeat dated more than `max_skew`
    seconds after it fails heartbeat.age with the measured skew (skew.py)."""
    limit = f"{max_age:g}s"
    if hb is None and error.startswith(f"{MirrorRootMissing.__name__}:"):
        # not a silent primary (which is when the mirror must take over) but no mirror at
        # all: a switch would serve no uploads. Refused whatever the severity (a breaker)
        return [Check("heartbeat.age", False, "none", limit,
                      f"{error}: failing over would serve an empty mirror", severity=FAIL)]
    if hb is None:
        why = error or f"no {HEARTBEAT} on target {target}: is mirrord running on the primary?"
        return [Check("heartbeat.age", False, "none", limit, why, severity=severity)]
    age = skew.age(now, hb.unix, max_skew)
    data = {"unix": hb.unix, "time": hb.time, "host": hb.host, "age": _round(age.seconds),
            "ahead": round(age.ahead, 3)}
    if age.seconds is None:
        whose = f"the last heartbeat on {target} (from {hb.host or '?'}, {hb.time})"
        age_check = Check("heartbeat.age", False, f"dated {age.ahead:.1f}s ahead", limit,
                          skew.skew_text(age.ahead, max_skew, whose=whose, judge="this host"),
                          severity=severity, data=data)
    else:
        ahead = f" (dated {age.ahead:.1f}s ahead, within max_clock_skew)" if age.ahead else ""
        age_check = Check("heartbeat.age", age.seconds <= max_age, f"{age.seconds:.1f}s{ahead}",
                          limit, f"the last heartbeat on {target} (from {hb.host or '?'}, "
                          f"{hb.time}) is {age.seconds:.1f}s old, above max_heartbeat_age "
                          f"{limit}: uploads may be missing", severity=severity, data=data)
    oldest = f" (oldest {hb.oldest_pending_age:.1f}s)" if hb.pending else ""
    pending = Check("heartbeat.pending", hb.pending == 0, f"{hb.pending}{oldest}",
                    "0", f"{hb.pending} change(s) not yet shipped to {target} when the heartbeat "
                    "was written", severity=severity,
                    data={"pending": hb.pending, "oldest_pending_age": hb.oldest_pending_age})
    return [age_check, pending]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
