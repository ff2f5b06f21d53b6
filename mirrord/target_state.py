"""Each target's named state and replication lag, decided from the journal's backlog.

The one question operators of Patroni or repmgr expect answered at all times is
"can the mirror take over now?". On the primary that is: is every target in
sync? This module answers it per target, purely: `TargetStates.update()` is fed
what the daemon knows at each heartbeat and returns a `TargetState` per target.
It reads no clock and no database; the daemon passes `now` (Unix seconds, the
clock of the journal's `first_seen` and `last_at`).

Replication lag (`lag_seconds`): the age of the oldest change not yet on the
target (`now - oldest first_seen`), 0 when nothing is pending, never negative
(a clock stepped back reads 0).

The rules, first match wins (thresholds in seconds, constructor arguments):

0. `degraded` first when a source that feeds the target has lost its root or has its
   deletes held (rule 2's last cases: held or refused rows wait on purpose, they are
   not a stall).
1. `stalled`: changes are pending and nothing has been shipped to the target
   for more than `stalled_after` (default 120 s) while they waited. "Waited"
   counts from the latest of: the oldest pending change, the last shipment
   (the journal's `last_at`, or a rise of its `shipped` count seen between two
   updates), and the first update this object saw (a daemon that just started
   has not had its chance yet). A single transfer that takes longer than
   `stalled_after` while no other change ships shows as stalled too.
2. `degraded`: changes to the target are failing and being retried with
   backoff (the backlog's `failing`: rows with attempts > 0), or a source that
   feeds the target has directories that could not be watched
   (`source_health()[source]["unwatched_directories"] > 0`: changes there are
   found only by the rescan every few seconds, not live), or a file system mounted
   below such a source's root is gone (`lost_mounts`, mirrord.submounts: deletes
   below it are refused until it is back), or such a source's root itself is lost
   (`root_lost`, mirrord.daemon_roots: nothing of it is watched until it is back),
   or such a source's deletes are held (`deletes_held`: a mass-change alarm, or a
   comparison at start or at a root's return over `[reconcile] max_delete`; the
   target keeps what the source no longer holds until `mirrord resume-deletes`),
   or the target's latest heartbeat could not be written (`unwritable`: the
   target is unreachable, refuses the credentials, or its root, bucket or
   directory is gone). Before that last case a target with nothing pending was
   `in_sync` while no write could reach it (a breaker: a deleted bucket, a removed
   mirror root, a rotated secret), and /ready, status and the metrics said so.
3. `initial_sync`: the target has never been in sync and changes are pending,
   or the catch-up walk of one of its sources is under way (`scanning`), or its
   watcher reads behind (rule 4).
4. `catching_up`: the target was in sync before, and either the lag exceeds
   `catching_up_after` (default 5 s: a live change normally ships within one
   heartbeat) or a catch-up walk of one of its sources is under way (after a
   start, an inotify queue overflow, a step error: until the walk ends, changes
   may be missing that the backlog does not show), or the watcher of one of its
   sources has not found the kernel's event queue empty for more than
   `catching_up_after` (`events_unread_for`, mirrord.watch.read_lag: it reads
   behind the writes, and what it has not read is not in the backlog either; a
   session saw `pending 0` for 90 s while a writer outside the root kept a fanotify
   mark's queue full ahead of the root's changes), or the walk for the other names of
   a hard-linked file written through a name not known yet is due (`linking`: up to
   30 s, mirrord.daemon_events.LinkWalks; the other names' copies on the targets are
   old until it runs). Rule 3 counts these as a walk too.
5. `in_sync`: otherwise; pending changes younger than `catching_up_after` are
   the live stream, not a backlog.

"Ever in sync" is remembered: the first `in_sync` sets it for good, and the
daemon persists it (the `ever_in_sync` field of `TargetState.to_json()`, stored
in the journal's "daemon" state document) and passes it back after a restart,
so a restart with a backlog is `catching_up`, not a new `initial_sync`. A
target with no such record (a first start, or an upgrade from a version that
kept none) is `initial_sync` until it first drains its backlog.

There is no hysteresis: a lag crossing `catching_up_after` back and forth flips
the state each heartbeat. Alert on a state held `for:` some minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from mirrord.journal import TargetBacklog
from mirrord.logsetup import redact

INITIAL_SYNC, CATCHING_UP, IN_SYNC, DEGRADED, STALLED = (
    "initial_sync", "catching_up", "in_sync", "degraded", "stalled")
STATES = (INITIAL_SYNC, CATCHING_UP, IN_SYNC, DEGRADED, STALLED)
CATCHING_UP_AFTER = 5.0    # seconds
STALLED_AFTER = 120.0      # seconds


@dataclass(frozen=True)
class TargetState:
    """One target's verdict: `state` (one of STATES), `lag_seconds` (>= 0), a
    one-line `reason` for operators, and whether the target was ever in sync. The reason
    is kept with any credential masked (logsetup.redact): it may quote a target's error
    (`heartbeat not written: ...`), and it goes to the state database and, in the
    heartbeat, to the mirror itself."""

    state: str
    lag_seconds: float
    reason: str
    ever_in_sync: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", redact(self.reason))

    def to_json(self) -> dict:
        """The shape stored under "target_states" in the daemon's state document and
        shown by `mirrord status --json` and `/ready`."""
        return {"state": self.state, "lag_seconds": round(self.lag_seconds, 3),
                "reason": self.reason, "ever_in_sync": self.ever_in_sync}


def ever_in_sync_from(document: object) -> set[str]:
    """Targets recorded as ever in sync in a stored daemon state document (a dict with
    "target_states": {target: TargetState.to_json()}); empty for None or an older shape."""
    states = document.get("target_states") if isinstance(document, dict) else None
    if not isinstance(states, dict):
        return set()
    return {t for t, s in states.items() if isinstance(s, dict) and s.get("ever_in_sync")}


class TargetStates:
    """Decides each target's state at every update; remembers progress between updates.

    `routes`: source name -> the target names it feeds (as in the config).
    `targets`: every target to report (default: those `routes` names; one that no source
    feeds has nothing pending and is in_sync).
    `ever_in_sync`: targets known to have been in sync before (ever_in_sync_from()).
    Not thread-safe: the daemon's main loop is its only caller.
    """

    def __init__(self, routes: Mapping[str, Iterable[str]], *, targets: Iterable[str] = (),
                 ever_in_sync: Iterable[str] = (),
                 catching_up_after: float = CATCHING_UP_AFTER,
                 stalled_after: float = STALLED_AFTER):
        self.routes = {src: tuple(ts) for src, ts in routes.items()}
        self.targets = list(dict.fromkeys([*(t for ts in self.routes.values() for t in ts),
                                           *targets]))
        self.catching_up_after = catching_up_after
        self.stalled_after = stalled_after
        self._ever = set(ever_in_sync)
        self._watching_since: float | None = None
        self._shipped: dict[str, tuple[int, float]] = {}   # target -> (count, seen rising at)
        self.current: dict[str, TargetState] = {}

    def update(self, backlog: Mapping[str, TargetBacklog], *, now: float,
               sources: Mapping[str, Mapping] | None = None,
               scanning: Iterable[str] = (),
               unwritable: Mapping[str, str] | None = None,
               journal_held: int = 0, linking: Iterable[str] = ()) -> dict[str, TargetState]:
        """Each configured target's state at `now` (Unix seconds).

        `backlog`: journal.read_backlog() (a target absent from it has nothing pending);
        `sources`: Daemon.source_health() (source -> {"unwatched_directories": int,
        "events_unread_for": seconds, ...});
        `scanning`: names of sources whose catch-up walk has not finished;
        `linking`: names of sources whose walk for the other names of hard-linked files is
        due (a write through one name reaches the others only then: catching_up);
        `unwritable`: target -> the error of its latest heartbeat write, for each target
        whose latest heartbeat write failed; `journal_held`: changes and outcomes the
        pipeline holds in memory because the state database cannot be written (disk
        full, another process holding its lock): every target is degraded while any are
        held, since the backlog read from that database does not count them. Before, a
        full state disk left status, the heartbeat, the metrics and /ready at in_sync with
        0 pending while 105 changes waited unshipped (a breaker).
        """
        if self._watching_since is None:
            self._watching_since = now
        sources = sources or {}
        scanning = set(scanning)
        linking = set(linking)
        unwritable = unwritable or {}
        self.current = {t: self._decide(t, backlog.get(t) or TargetBacklog(t), now, sources,
                                        scanning, unwritable.get(t), linking)
                        for t in self.targets}
        if journal_held:
            for t, st in self.current.items():
                self.current[t] = TargetState(
                    DEGRADED, st.lag_seconds, f"the state database cannot be written: "
                    f"{journal_held} changes held in memory, not shipped until it can "
                    f"(disk full? another process holding its lock?)", st.ever_in_sync)
        return dict(self.current)

    def to_json(self) -> dict[str, dict]:
        """{target: TargetState.to_json()} of the last update."""
        return {t: s.to_json() for t, s in self.current.items()}

    def _decide(self, target: str, b: TargetBacklog, now: float,
                sources: Mapping[str, Mapping], scanning: set[str],
                unwritable: str | None, linking: set[str]) -> TargetState:
        lag = max(0.0, now - b.oldest) if b.pending and b.oldest is not None else 0.0
        last_progress = self._progress(target, b, now)
        feeds = [s for s, ts in self.routes.items() if target in ts]

        def verdict(state: str, reason: str) -> TargetState:
            if state == IN_SYNC:
                self._ever.add(target)
            return TargetState(state, lag, reason, target in self._ever)

        # first: a lost root's refused deletes are also failing (or held) rows; this says why
        roots = {s: sources.get(s, {}).get("root_lost") for s in feeds}
        if any(roots.values()):
            return verdict(DEGRADED, "; ".join(
                f"source {s}: root lost ({why}); nothing of it is watched or deleted until "
                f"it is back" for s, why in roots.items() if why))
        # before `stalled`: held deletes are pending rows that are meant to wait; and a
        # capped comparison queued none of them, so nothing pending would show them at all
        held = [s for s in feeds if sources.get(s, {}).get("deletes_held")]
        if held:
            return verdict(DEGRADED, "; ".join(
                f"source {s}: deletes held (the target keeps what the source no longer "
                f"holds) until `mirrord resume-deletes --source {s}`" for s in held))
        if b.pending:
            waited = now - max(last_progress, b.oldest if b.oldest is not None else now)
            if waited > self.stalled_after:
                return verdict(STALLED, f"{b.pending} changes pending and nothing shipped for "
                                        f"{waited:.0f}s (limit {self.stalled_after:g}s)")
        unwatched = {s: int(sources.get(s, {}).get("unwatched_directories") or 0) for s in feeds}
        if b.failing:
            return verdict(DEGRADED, f"{b.failing} of {b.pending} pending changes failed and are "
                                     f"retried with backoff")
        if any(unwatched.values()):
            return verdict(DEGRADED, "; ".join(
                f"source {s}: {n} directories not watched (rescanned every few seconds)"
                for s, n in unwatched.items() if n))
        lost = {s: sources.get(s, {}).get("lost_mounts") or [] for s in feeds}
        if any(lost.values()):
            return verdict(DEGRADED, "; ".join(
                f"source {s}: file system below the root not mounted at {', '.join(p)} "
                f"(deletes below it refused until it is back)" for s, p in lost.items() if p))
        if unwritable is not None:
            return verdict(DEGRADED, f"heartbeat not written: {unwritable}")
        walking = [s for s in feeds if s in scanning]
        walk = f"catch-up walk of source {', '.join(walking)} under way" if walking else ""
        if not walking:
            walking = [s for s in feeds if s in linking]
            walk = (f"source {', '.join(walking)}: a file written through a hard link whose "
                    f"other names are not known yet; the walk that finds them is due"
                    if walking else "")
        behind = {s: float(sources.get(s, {}).get("events_unread_for") or 0.0) for s in feeds}
        behind = {s: t for s, t in behind.items() if t > self.catching_up_after}
        if behind and not walk:
            walk = "; ".join(f"source {s}: the watcher has not emptied the kernel's event "
                             f"queue for {t:.0f}s (changes not yet read are not in the "
                             f"backlog)" for s, t in behind.items())
            walking = list(behind)
        if target not in self._ever and (b.pending or walking):
            return verdict(INITIAL_SYNC, walk or f"first copy: {b.pending} changes pending, "
                                                 f"oldest {lag:.0f}s old")
        if walking:
            return verdict(CATCHING_UP, walk)
        if lag > self.catching_up_after:
            return verdict(CATCHING_UP, f"{b.pending} changes pending, oldest {lag:.0f}s old "
                                        f"(in_sync once none is older than "
                                        f"{self.catching_up_after:g}s)")
        return verdict(IN_SYNC, f"{b.pending} changes pending, oldest {lag:.1f}s old"
                       if b.pending else "nothing pending")

    def _progress(self, target: str, b: TargetBacklog, now: float) -> float:
        """Unix time of the latest sign that the target takes changes (see rule 1)."""
        count = int(b.extra.get("shipped") or 0)
        previous = self._shipped.get(target)
        rose_at = now if previous is not None and count > previous[0] else (
            previous[1] if previous is not None else 0.0)
        self._shipped[target] = (count, rose_at)
        last_at = float(b.extra.get("last_at") or 0.0)
        assert self._watching_since is not None
        return max(last_at, rose_at, self._watching_since)
