"""Whether this host has already switched the site to its read-only mirror.

After `mirrord failover` or `switchover` flipped the application config here (and
no failback since), the mirror serves the site: /ready answers 200 saying so
(README, Readiness), whatever the checks that would refuse a *new* failover say
(the primary being down fails replica.wal_receiver by design). Repeating a
failover is harmless, so "failover would go ahead" still holds: readiness.judge
lists those checks as warnings. The evidence is the application config itself
(the link points at the read-only config, or the flag holds the message failover
wrote), read as the health service's user may, with the switch record standing in
state_dir (failover and switchover write it, failback removes it); that record
(0600, written by the user that flipped) adds the command and the time when it
can be read, else the link's or flag's change time stands for it.
"""

from __future__ import annotations

import json
import os
import time

from mirrord.failover.switch_record import Switch, read_trusted


def state(switch) -> dict | None:
    """{"action": "failover"|"switchover"|"failover or switchover", "at": ISO UTC time,
    "config": what the app config shows} when `switch` (appconfig.SymlinkSwitch or
    flagfile.FlagFileSwitch) shows the read-only configuration now; None otherwise
    (also when it cannot be read: the normal judgement then applies). Never raises."""
    try:
        # made here by failover or switchover: their record stands until failback. A link
        # or flag put on the read-only config by hand or by a deploy, with no switch ever
        # made, read as switched and gave the mirror the IP at any primary outage (a breaker)
        if not os.path.lexists(switch.record_path):
            return None
    except (OSError, ValueError):
        return None
    rec = _record(switch)
    try:
        if not switch.is_readonly(rec):
            return None
        where = switch.flag if hasattr(switch, "flag") else switch.link
        changed = os.lstat(where).st_mtime
    except (OSError, ValueError):
        return None
    at = rec.get("recorded_at") if isinstance(rec.get("recorded_at"), str) else None
    action = rec.get("action") if rec.get("action") in ("failover", "switchover") else None
    return {"action": action or "failover or switchover",
            "at": at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(changed)),
            "config": switch.state()}


def _record(switch: Switch) -> dict:
    """The switch record when this user may read it and it is sound, else {} (quietly:
    the health service's user is usually not the one that wrote it)."""
    try:
        doc = json.loads(read_trusted(switch.record_path))
    except (OSError, ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("mode") == getattr(switch, "mode", None) \
        else {}
