"""The replica's preconditions judged from what was read (pure: no server, no clock).

Lag in seconds is measured the way repmgr does it: zero when everything received has
been replayed (an idle primary writes no transactions, so the last replayed
transaction may be old without the replica being behind), else the replica's now()
minus the last replayed transaction's commit time. That commit time is stamped by the
primary's clock, so a stamp ahead of the replica's now() by more than max_clock_skew is
flagged as clock skew (skew), never taken as lag 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mirrord.failover import skew
from mirrord.failover.result import WARN, Check


def parse_lsn(text: str | None) -> int | None:
    """'16/B374D848' -> an integer byte position (None stays None)."""
    if not text:
        return None
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def replay_lag_seconds(receive: int | None, replay: int | None, now: datetime,
                       last_replay: datetime | None) -> float | None:
    """Seconds the replica is behind, the repmgr way; None when it cannot be known."""
    if receive is not None and replay is not None and receive <= replay:
        return 0.0
    if last_replay is None:
        return None
    return max(0.0, (now - last_replay).total_seconds())


def replay_lag_bytes(receive: int | None, replay: int | None) -> int | None:
    if receive is None or replay is None:
        return None
    return max(0, receive - replay)


@dataclass(frozen=True)
class ReplicaStatus:
    in_recovery: bool
    receive_lsn: int | None
    replay_lsn: int | None
    now: datetime
    last_replay: datetime | None
    pause_state: str               # 'not paused', 'pause requested' or 'paused'
    receiver_pid: int | None
    receiver_status: str | None    # None when hidden (role lacks pg_read_all_stats)
    system_id: int | None = None   # pg_control_system()'s; None when it could not be read


def judge(st: ReplicaStatus, max_lag: float,
          max_skew: float = skew.DEFAULT_MAX_SKEW) -> list[Check]:
    """One Check per replica precondition, each with its measured value and limit.

    `max_lag` and `max_skew` are seconds; a last replayed commit stamped (by the
    primary's clock) more than `max_skew` after the replica's now() fails the lag check
    as clock skew rather than passing as lag 0."""
    checks = [Check("replica.in_recovery", st.in_recovery, _yes(st.in_recovery), "yes",
                    "the database is not a standby (promoted, or not the replica?)")]
    if not st.in_recovery:
        return checks
    checks.append(_receiver_check(st))
    paused = st.pause_state != "not paused"
    checks.append(Check("replica.replay_paused", not paused, st.pause_state, "not paused",
                        "WAL replay is paused; run SELECT pg_wal_replay_resume() on the replica"))
    checks.append(_lag_check(st, max_lag, max_skew))
    checks += _idle_commit_clock(st, max_skew)
    lag_bytes = replay_lag_bytes(st.receive_lsn, st.replay_lsn)
    checks.append(Check("replica.replay_lag_bytes", True,
                        "unknown" if lag_bytes is None else f"{lag_bytes} B", "-",
                        data={"bytes": lag_bytes}))
    return checks


def for_failback(checks: list[Check]) -> list[Check]:
    """The replica's checks (judge_reading's) as failback weighs them, changed in place.

    Failback sends the site's writes to the primary again, so one thing about the
    mirror's database refuses it: that it is no longer a standby (promoted by hand
    during the outage, pg_promote() or `pg_ctl promote`). What was written to it since is
    not on the primary, and the site would go back with two writable databases (a
    breaker: failback said "done", exit 0). `failback --force` accepts that, as failover's
    does for its replica checks (force.forceable). Everything else (unreachable,
    not streaming, paused, lagging) is a warning: failback does not read the mirror's
    database, but the mirror cannot take over again until it is a current standby."""
    for check in checks:
        if check.ok:
            continue
        if check.name == "replica.in_recovery":
            check.message = ("the mirror's database is not a standby: promoted during the "
                             "outage? Then what was written to it since is not on the primary, "
                             "and the site would go back with two writable databases: make it "
                             "a standby of the primary again first (pg_rewind, or "
                             "pg_basebackup -R). Or is [failover] database not the mirror's "
                             "replica?")
            continue
        check.severity = WARN
        if check.name in _STANDBY_CHECKS and "ahead" not in check.data:   # not clock skew
            check.message += ("; failback goes ahead, but the mirror cannot take over again "
                              "until its database is a current standby")
    return checks


SYSTEM_CHECK = "replica.system_identifier"


def same_system(checks: list[Check], *, failback: bool) -> list[Check]:
    """Whether the mirror's database is a copy of the primary, from the system identifiers
    read beside replica.connect and primary.connect (their data's "system_identifier"):
    one check, or none when either server was not read (unreachable, in recovery,
    primary_database not set: their own checks say so). An identifier that cannot be read
    (pg_control_system() revoked) refuses nothing and is a warning saying so: silence let
    a switchover compare two clusters' positions unnoticed (a review).

    A physical standby, a pg_basebackup or pg_rewind keeps the primary's system identifier
    (PostgreSQL docs, pg_control_system; initdb sets it); only another cluster differs.
    switchover waits for the replica to replay the primary's WAL position: compared with
    another cluster's position that wait means nothing, and it could end "caught up" and
    serve another database's data, so it refuses. failback refuses too (--force accepts,
    force.forceable): the primary made anew during the outage (initdb and a dump) may lack
    what the mirror's database held and showed; or a [failover] setting names the wrong
    server."""
    replica_read = _read(checks, "replica.connect")
    primary_read = _read(checks, "primary.connect")
    # unreachable, in recovery, or primary_database not set ("not checked": no lsn): said there
    if replica_read is None or primary_read is None or "lsn" not in primary_read.data:
        return []
    replica_id, primary_id = _ident(replica_read), _ident(primary_read)
    if replica_id is None or primary_id is None:   # said, not silent: nothing compared
        unread = " and ".join(w for w, v in (("the mirror's database", replica_id),
                                             ("the primary", primary_id)) if v is None)
        why = (f"pg_control_system() is not readable on {unread} by the configured user "
               "(EXECUTE revoked?): whether the two are one cluster is not known; grant "
               "EXECUTE on it to that user to have it compared")
        return [Check(SYSTEM_CHECK, False, "not compared", "the primary's", why,
                      severity=WARN, data={"reason": why})]
    data = {"replica": str(replica_id), "primary": str(primary_id)}
    if replica_id == primary_id:
        return [Check(SYSTEM_CHECK, True, str(replica_id), "the primary's", data=data)]
    if failback:
        why = ("the primary made anew during the outage (initdb, a dump restored)? What "
               "was committed after that dump, and the mirror's database holds, may not be "
               "on it; or does [failover] database or primary_database name the wrong "
               "server? The mirror cannot take over again until its database is rebuilt "
               "as a standby of this primary (pg_basebackup -R; pg_rewind cannot join "
               "two clusters)")
    else:
        why = ("the replica is no copy of this primary, so its replay position means "
               "nothing against the primary's and the switch would serve another database; "
               "does [failover] database or primary_database name the wrong server?")
    return [Check(SYSTEM_CHECK, False, str(replica_id), f"{primary_id} (the primary's)",
                  f"the mirror's database is another cluster than the primary's: {why}",
                  data=data)]


def _read(checks: list[Check], name: str) -> Check | None:
    """The check `name` when it passed (its server connected and read), else None."""
    return next((c for c in checks if c.name == name and c.ok), None)


def _ident(check: Check) -> int | None:
    value = check.data.get("system_identifier")
    return None if value is None else int(value)


# what says the mirror's database is a current standby (for_failback's warning words; a
# clock check, replica.commit_clock, says nothing of that)
_STANDBY_CHECKS = ("replica.connect", "replica.wal_receiver", "replica.replay_paused",
                   "replica.replay_lag")


def _receiver_check(st: ReplicaStatus) -> Check:
    data = {"pid": st.receiver_pid, "status": st.receiver_status}
    if st.receiver_pid is not None and st.receiver_status is None:
        return Check("replica.wal_receiver", True, f"pid {st.receiver_pid} (status hidden: "
                     "grant pg_read_all_stats to see it)", "streaming", data=data)
    if st.receiver_status == "streaming":
        return Check("replica.wal_receiver", True, "streaming", "streaming", data=data)
    value = st.receiver_status or "none"
    return Check("replica.wal_receiver", False, value, "streaming",
                 f"the replica is not receiving WAL from the primary ({_last_replay(st)}); "
                 "expected when the primary is down: judge whether that is recent enough",
                 data=data)


def _last_replay(st: ReplicaStatus) -> str:
    if st.last_replay is None:
        return "no transaction replayed yet"
    ago = (st.now - st.last_replay).total_seconds()
    when = f"{ago:.0f}s ago" if ago >= 0 else f"{-ago:.0f}s in the future of the replica's clock"
    return f"last replayed transaction committed {st.last_replay.isoformat(timespec='seconds')}, " \
           f"{when}"


def _lag_check(st: ReplicaStatus, max_lag: float, max_skew: float) -> Check:
    lag = replay_lag_seconds(st.receive_lsn, st.replay_lsn, st.now, st.last_replay)
    data = {"seconds": lag, "receive_lsn": _lsn_text(st.receive_lsn),
            "replay_lsn": _lsn_text(st.replay_lsn),
            "last_replay": st.last_replay.isoformat() if st.last_replay else None}
    limit = f"{max_lag:g}s"
    if st.last_replay is not None and not _all_replayed(st):   # lag from two hosts' clocks
        age = skew.age(st.now.timestamp(), st.last_replay.timestamp(), max_skew)
        if age.skewed():
            data["seconds"], data["ahead"] = None, round(age.ahead, 3)
            return Check("replica.replay_lag", False, f"dated {age.ahead:.1f}s ahead", limit,
                         skew.skew_text(age.ahead, max_skew, whose="the last replayed commit "
                                        "(stamped by the primary's clock)",
                                        judge="the replica's now()"), data=data)
    if lag is None:
        return Check("replica.replay_lag", False, "unknown", limit,
                     "WAL is waiting to be replayed and no transaction was replayed yet", data=data)
    return Check("replica.replay_lag", lag <= max_lag, f"{lag:.1f}s", limit,
                 f"replay lag {lag:.1f}s is above max_replay_lag {limit}", data=data)


def _idle_commit_clock(st: ReplicaStatus, max_skew: float) -> list[Check]:
    """All replayed: lag 0 whatever the stamps say, but a last commit dated beyond max_skew
    ahead still shows the primary's clock is off: a warning, never silence."""
    if st.last_replay is None or not _all_replayed(st):
        return []
    return skew.ahead_warning("replica.commit_clock", st.now.timestamp(),
                              st.last_replay.timestamp(), max_skew,
                              whose="the last replayed commit (stamped by the primary's clock)",
                              judge="the replica's now()")


def _all_replayed(st: ReplicaStatus) -> bool:
    return st.receive_lsn is not None and st.replay_lsn is not None \
        and st.receive_lsn <= st.replay_lsn


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _lsn_text(value: int | None) -> str | None:
    return None if value is None else format_lsn(value)
