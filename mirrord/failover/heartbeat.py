"""The file mirror's heartbeat, read from the heartbeat target and judged.

The document type itself (fields, parse) is mirrord.heartbeat, shared with the
daemon that writes it.

The daemon on the primary writes `<target root>/.mirrord/heartbeat.json`
every heartbeat_interval: when it was written, by which host, how many
changes were not yet shipped to that target, and the target's named state
(mirrord.target_state: in_sync, or why not). Failover only reads it, through
the target interface opened read-only (Target.open(readonly=True)), never writes
the mirror: no sweep of the primary's uploads in flight, no root made where a
mount is missing. Age is measured against this
host's clock, a comparison across two hosts' clocks: skew.py tolerates
[failover] max_clock_skew and flags a heartbeat dated further in the future.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout

from mirrord import heartbeat as heartbeat_doc, targets
from mirrord.config import Config, FailoverConfig
from mirrord.errors import MirrordError, MirrorRootMissing, NotAHeartbeat
from mirrord.failover import skew
from mirrord.failover.result import FAIL, Check
from mirrord.targets.paths import META_DIR

HEARTBEAT = heartbeat_doc.NAME
# the data key marking the check of a mirror root missing or empty, which only
# `failover --force` accepts (force.forceable)
MIRROR_ROOT = "mirror_root"
Heartbeat = heartbeat_doc.Heartbeat
parse = heartbeat_doc.parse


def read(cfg: Config, name: str) -> Heartbeat | None:
    """The heartbeat on target `name`, None when absent; MirrordError/ValueError on trouble
    (MirrorRootMissing when the target's root does not exist, or is empty: a mount point
    whose file system is not mounted, mirrord.targets.root_check; NotAHeartbeat when
    something else stands at its name, a directory, a FIFO, a symlink, which is never read
    and was reported as absent: Target.meta_kind says what). The target is
    opened read-only (Target.open): this runs on the mirror host while the primary's
    daemon may be writing, so nothing is swept, made or locked there."""
    target = targets.create(cfg.targets[name])
    try:
        target.open(readonly=True)
        data = target.read_meta(HEARTBEAT)
        # None: absent, or something else stands there, never read (a FIFO would block,
        # a symlink lead out of the mirror); which, for the message (Target.meta_kind)
        found = _what_stands(target) if data is None else None
    finally:
        target.close()
    why = target.no_mirror()   # an unmounted mount point (targets.root_check)
    if data is None and why:   # a root without .mirrord/: also when something else is there
        also = f"; {found[0]} is {found[1]}" if found is not None else ""
        raise MirrorRootMissing(f"{target.describe()}: {why}{also}")
    if found is not None:
        raise NotAHeartbeat(f"{target.describe()}: {not_a_heartbeat(*found)}")
    return None if data is None else parse(data)


def _what_stands(target: targets.Target) -> tuple[str, str] | None:
    """Target.meta_kind, best effort: it only words a message, so its own failure (an
    rsync target's extra ssh command refused or cut) is no answer, never an error that
    would take the place of the missing-root refusal below (a review: a failing look
    turned the mirror root's FAIL into a WARN)."""
    try:
        return target.meta_kind(HEARTBEAT)
    except Exception:   # noqa: BLE001 - any failure: the message goes without it
        return None


# why what stands there is not read, beside its kind (not_a_heartbeat)
_UNREAD = {"a symlink": " (never followed: it could lead out of the mirror)",
           "a FIFO": " (never opened: the read would wait for a writer)"}


def not_a_heartbeat(where: str, what: str) -> str:
    """NotAHeartbeat's words: `what` (Target.meta_kind's words) stands at `where`
    (relative to the target root) instead of the heartbeat file or its directory."""
    unread = next((why for kind, why in _UNREAD.items() if what.startswith(kind)), "")
    wanted = "a heartbeat file" if where == f"{META_DIR}/{HEARTBEAT}" else "a directory"
    return (f"{where} is {what}, not {wanted}{unread}; mirrord on the primary writes its "
            "heartbeat there in its place: is it running?")


def deadline(fo: FailoverConfig) -> float:
    """Seconds a heartbeat read may take, in `failover`, `switchover` and /ready alike:
    the database's budget (libpq's connect_timeout, at least 2 s, plus one
    statement_timeout). A target that answers later (an S3 endpoint that accepts and
    hangs: botocore waited 30 s x 2 attempts) gives the same WARN everywhere, within
    /ready's cap (health.service.run_timeout), instead of /ready saying 503 while
    failover went ahead after a minute (a breaker)."""
    return max(2, math.ceil(fo.connect_timeout)) + fo.statement_timeout


def fetch(cfg: Config, name: str, *, timeout: float | None = None) -> tuple[Heartbeat | None, str]:
    """(heartbeat, error text) within `timeout` seconds (default: deadline([failover]));
    never raises for an unreachable or hanging target or a bad file."""
    return result(start(cfg, name), name, time.monotonic() + (
        deadline(cfg.failover) if timeout is None else timeout))


_INFLIGHT: dict[tuple[str, str], Future] = {}
_LOCK = threading.Lock()


def start(cfg: Config, name: str) -> Future:
    """Begin reading the heartbeat on `name` in a worker thread; a read of `name` still
    under way (a target that hangs) is joined instead of started again, so hanging
    threads never pile up (/ready measures every interval)."""
    key = (name, repr(cfg.targets.get(name)))   # the same target as configured now
    with _LOCK:
        fut = _INFLIGHT.get(key)
        if fut is None or fut.done():
            fut = _INFLIGHT[key] = Future()
            threading.Thread(target=_read_into, args=(fut, cfg, name), daemon=True,
                             name=f"mirrord-heartbeat-{name}").start()
        return fut


def result(fut: Future, name: str, until: float) -> tuple[Heartbeat | None, str]:
    """What `start` read, waiting until monotonic time `until`; a TimeoutError text
    naming the target when it has not answered by then."""
    try:
        return fut.result(max(0.0, until - time.monotonic()))
    except FutureTimeout:
        return None, (f"TimeoutError: target {name} did not answer the heartbeat read in "
                      "time (connect_timeout + statement_timeout)")


def _read_into(fut: Future, cfg: Config, name: str) -> None:
    try:
        fut.set_result((read(cfg, name), ""))
    except (MirrordError, ValueError, OSError) as exc:
        fut.set_result((None, f"{type(exc).__name__}: {exc}"))
    except BaseException as exc:   # noqa: BLE001 (reported to the caller, never raised)
        fut.set_result((None, f"{type(exc).__name__}: {exc}"))


def judge(hb: Heartbeat | None, error: str, *, target: str, now: float, max_age: float,
          severity: str = FAIL, max_skew: float = skew.DEFAULT_MAX_SKEW) -> list[Check]:
    """The heartbeat's checks: heartbeat.age, heartbeat.pending and heartbeat.state.

    `hb` and `error` are fetch()'s answer for `target` (a [target:NAME] name, for the
    messages). `severity` applies to every check alike: WARN for failover and the
    default /ready (the primary is gone, its heartbeat stops), FAIL for switchover and a
    strict /ready (readiness.judge); a mirror root that does not exist (MirrorRootMissing:
    a mount missing) always FAILs, with data {MIRROR_ROOT: "missing"} so that only
    `failover --force` (README, the failover runbook) accepts it. `now` is this host's Unix time in seconds and `max_age`
    the limit on the heartbeat's age in seconds; a heartbeat dated more than `max_skew`
    seconds after `now` fails heartbeat.age with the measured skew (skew.py).

    heartbeat.state passes only when the writer said the target is `in_sync` and
    reported no unwatched directories and nothing `degraded` (a lost source root or
    mount, mirrord.daemon_roots / submounts): a degraded target (deletes held, a root
    lost) or a catch-up walk under way can have 0 pending while the mirror lacks
    changes (README, the state table). Its message carries the heartbeat's `reason`.
    A heartbeat from a version that writes no `state` (nor `degraded`, nor unwatched
    directories) gets no heartbeat.state: it is judged on age and pending, as before.
    Returns the checks in that order; raises nothing."""
    limit = f"{max_age:g}s"
    if hb is None and error.startswith(f"{MirrorRootMissing.__name__}:"):
        # not a silent primary (which is when the mirror must take over) but no mirror at
        # all: a switch would serve no uploads. Refused whatever the severity (a breaker)
        return [Check("heartbeat.age", False, "none", limit,
                      f"{error}: failing over would serve an empty mirror", severity=FAIL,
                      data={MIRROR_ROOT: "missing"})]
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
    state = _state_check(hb, target, severity)
    return [age_check, pending] + ([state] if state is not None else [])


IN_SYNC = "in_sync"   # mirrord.target_state.IN_SYNC, the one state a switch may take
# why a state can leave the mirror short, for a heartbeat that carries no `reason`
# (mirrord.target_state's rules; README, the state table)
STATE_MEANS = {
    "degraded": "a source root lost, deletes held, changes failing, directories not "
                "watched or a file system below a source root gone",
    "stalled": "changes wait and nothing has been shipped for over 120 s",
    "initial_sync": "the first copy is not finished",
    "catching_up": "a backlog older than 5 s, or a catch-up walk under way (what it "
                   "finds is not counted as pending yet)",
}


def _state_check(hb: Heartbeat, target: str, severity: str) -> Check | None:
    """heartbeat.state (see judge); None for a heartbeat that reports no state at all."""
    unwatched = hb.unwatched_directories
    if not hb.state and not hb.degraded and not unwatched:
        return None   # written by a version without the field: judged as before
    value = hb.state or "not reported"
    value += f", {unwatched} directories not watched" if unwatched else (
        ", degraded" if hb.degraded and hb.state != "degraded" else "")
    ok = hb.state in ("", IN_SYNC) and not hb.degraded and not unwatched
    reason = hb.reason if hb.state not in ("", IN_SYNC) else ""   # "nothing pending": no why
    why = reason or STATE_MEANS.get(hb.state, "") or (
        f"{unwatched} directories not watched" if unwatched else f"state {value}")
    return Check("heartbeat.state", ok, value, IN_SYNC,
                 f"the last heartbeat on {target} (from {hb.host or '?'}, {hb.time}) says the "
                 f"file mirror is not in sync: {why}; files may be missing or outdated on the "
                 "mirror", severity=severity,
                 data={"state": hb.state, "reason": hb.reason, "degraded": hb.degraded,
                       "unwatched_directories": unwatched})


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
