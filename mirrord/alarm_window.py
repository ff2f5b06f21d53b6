"""The mass-change alarm's window across a restart: what each source counted within its
`alarm_window`, kept in the state database (a state document, key STATE_KEY) at every
heartbeat and at a clean stop, and counted again by the next start.

Before, a restart emptied the window: 8 deletes live, a restart, 8 more while stopped
made 16 deletes within seconds with `alarm_deletes = 10` and no alarm (a breaker).

Each count is kept as its age (seconds before the save, from the daemon's monotonic
clock) with the save's times. How long the daemon was away is measured, in this order:

- same boot (the kernel's boot_id unchanged): CLOCK_BOOTTIME, which counts suspend and
  is not moved by a wall clock stepped back or forward (NTP, an operator's `date -s`);
- after a reboot: the wall clock (time.time), the only clock that spans it; a clock
  stepped back reads as no time passed (the counts are kept: the safe side); one
  stepped far forward across the reboot reads as a long absence and the counts are
  forgotten - no clock can tell that from a long downtime.

A count older than the window once restored is dropped; the window of the current config
is used. A kill -9 loses what was counted since the last heartbeat (heartbeat_interval,
default 5 s). A resume (mirrord resume-deletes) re-arms the alarm from 0, restored
counts included (daemon_alarm).
"""

from __future__ import annotations

import time
from typing import Callable

from mirrord.alarm import SourceAlarm

STATE_KEY = "alarm_window"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str | None:
    """The kernel's id of this boot, or None when it cannot be read."""
    try:
        with open(BOOT_ID, encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def boot_clock() -> float:
    """Seconds since boot, suspend included (CLOCK_BOOTTIME; monotonic where it lacks)."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.monotonic()


class Clocks:
    """The clocks a save and a restore read (injectable for tests): wall (Unix seconds),
    boot (seconds since boot, boot_clock) and the boot's id (boot_id)."""

    def __init__(self, wall: Callable[[], float] = time.time, boot: Callable[[], float] = boot_clock,
                 boot_id: Callable[[], str | None] = boot_id):
        self.wall, self.boot, self.boot_id = wall, boot, boot_id


def snapshot(alarms: dict[str, SourceAlarm], clocks: Clocks) -> dict:
    """The state document: {"wall", "boot", "boot_id", "sources": {name: [[age s, n], ...]}}."""
    return {"wall": clocks.wall(), "boot": clocks.boot(), "boot_id": clocks.boot_id(),
            "sources": {name: [[round(age, 3), n] for age, n in a.window.ages()]
                        for name, a in alarms.items()}}


def away(doc: dict, clocks: Clocks) -> float:
    """Seconds since the save `doc` was made, never negative (see the module's rule)."""
    now_id = clocks.boot_id()
    if now_id is not None and doc.get("boot_id") == now_id and isinstance(doc.get("boot"), (int, float)):
        return max(0.0, clocks.boot() - doc["boot"])
    wall = doc.get("wall")
    return max(0.0, clocks.wall() - wall) if isinstance(wall, (int, float)) else 0.0


def restore(alarms: dict[str, SourceAlarm], doc: object, clocks: Clocks) -> dict[str, int]:
    """Count again in each alarm (before anything else is counted) what `doc` (snapshot())
    kept of it and is still within its window; the alarm is left inactive: the caller
    fires it like any count over its threshold (mirrord.daemon_alarm.restore_window). Set
    active without firing, it fired nothing after a restart that turned pause_on_alarm on
    or lowered alarm_deletes, and every delete went out (a review). Returns source ->
    count restored; {} for a missing or malformed document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), dict):
        return {}
    gone = away(doc, clocks)
    out = {}
    for name, pairs in doc["sources"].items():
        alarm = alarms.get(name)
        if alarm is None or not isinstance(pairs, list):
            continue
        ages = [(float(p[0]) + gone, int(p[1])) for p in pairs
                if isinstance(p, list) and len(p) == 2
                and all(isinstance(v, (int, float)) for v in p)]
        total = alarm.window.seed(ages)
        alarm.active = False
        if total:
            out[name] = total
    return out
