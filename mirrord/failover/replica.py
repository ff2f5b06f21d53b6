"""The read-only replica (and, for switchover, the primary), asked with psycopg 3.

Every connection is bounded by [failover] connect_timeout and every query by
statement_timeout. The judging is pure (`judge`), so the lag arithmetic is
tested without a server: lag in seconds is measured the way repmgr does it,
zero when everything received has been replayed (an idle primary writes no
transactions, so the last replayed transaction may be old without the replica
being behind), else now() minus the last replayed transaction's commit time.

No password ever leaves this module: conninfo passwords are registered with
logsetup's redaction and only host, port, dbname and user are ever shown.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import psycopg
from psycopg.conninfo import conninfo_to_dict

from mirrord.failover import pgconn, skew
from mirrord.failover.result import Check
from mirrord.logsetup import redact, register_secret

_STATUS_SQL = """
SELECT pg_is_in_recovery(),
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       now(),
       pg_last_xact_replay_timestamp(),
       current_setting('server_version_num')::int
"""
_RECEIVER_SQL = "SELECT pid, status FROM pg_stat_wal_receiver"


# ------------------------------------------------------------------ pure part


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


# --------------------------------------------------------------- server part


def describe(conninfo: str) -> str:
    """host:port/dbname as user, never the password."""
    try:
        d = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(unparseable conninfo)"
    return f"{d.get('host', 'localhost')}:{d.get('port', 5432)}/{d.get('dbname', '')} " \
           f"user={d.get('user', '')}"


def protect(conninfo: str) -> None:
    """Register the conninfo's password (if any) with the log redaction."""
    try:
        register_secret(str(conninfo_to_dict(conninfo).get("password") or ""))
    except psycopg.ProgrammingError:
        pass


def connect(conninfo: str, *, connect_timeout: float,
            statement_timeout: float) -> psycopg.Connection:
    """Connected within connect_timeout; each statement then answers within
    statement_timeout + 1 s, or psycopg.OperationalError (pgconn.BoundedConnection)."""
    protect(conninfo)
    conn = pgconn.BoundedConnection.connect(
        conninfo, connect_timeout=max(2, math.ceil(connect_timeout)), autocommit=True,
        application_name="mirrord-failover")
    conn.answer_timeout = statement_timeout + 1.0
    conn.execute("SELECT set_config('statement_timeout', %s, false)",
                 (f"{max(1, int(statement_timeout * 1000))}ms",))
    return conn


def error_text(exc: BaseException) -> str:
    return redact(" ".join(str(exc).split())) or type(exc).__name__


def read_status(conn: psycopg.Connection) -> ReplicaStatus:
    in_rec, receive, replay, now, last, version = conn.execute(_STATUS_SQL).fetchone()
    if version >= 140000:
        pause = conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] if in_rec \
            else "not paused"
    else:
        paused = conn.execute("SELECT pg_is_wal_replay_paused()").fetchone()[0] if in_rec else False
        pause = "paused" if paused else "not paused"
    row = conn.execute(_RECEIVER_SQL).fetchone()
    return ReplicaStatus(bool(in_rec), parse_lsn(receive), parse_lsn(replay), now, last, pause,
                         row[0] if row else None, row[1] if row else None)


@dataclass(frozen=True)
class Reading:
    """One look at the replica: its status, or why it could not be read."""

    where: str                      # host:port/dbname user=..., never the password
    status: ReplicaStatus | None
    error: str = ""


def read_replica(conninfo: str, *, connect_timeout: float, statement_timeout: float) -> Reading:
    """Connect and read the status; never raises for an unreachable or failing server."""
    where = describe(conninfo)
    try:
        with connect(conninfo, connect_timeout=connect_timeout,
                     statement_timeout=statement_timeout) as conn:
            return Reading(where, read_status(conn))
    except psycopg.Error as exc:
        return Reading(where, None, error_text(exc))


def judge_reading(reading: Reading, *, max_lag: float,
                  max_skew: float = skew.DEFAULT_MAX_SKEW) -> list[Check]:
    """The checks of one reading (pure); an unreachable replica is one failed check."""
    if reading.status is None:
        return [Check("replica.connect", False, "unreachable", "reachable",
                      f"{reading.where}: {reading.error}")]
    return [Check("replica.connect", True, reading.where, "reachable")] + \
        judge(reading.status, max_lag, max_skew)


def check_replica(conninfo: str, *, connect_timeout: float, statement_timeout: float,
                  max_lag: float, max_skew: float = skew.DEFAULT_MAX_SKEW) -> list[Check]:
    """Connect to the replica and judge it (read_replica, then judge_reading)."""
    reading = read_replica(conninfo, connect_timeout=connect_timeout,
                           statement_timeout=statement_timeout)
    return judge_reading(reading, max_lag=max_lag, max_skew=max_skew)


def primary_position(conninfo: str, *, connect_timeout: float, statement_timeout: float,
                     max_skew: float = skew.DEFAULT_MAX_SKEW,
                     wall: Callable[[], float] = time.time) -> tuple[list[Check], int | None]:
    """The primary's current WAL position, as checks: reachable and not in recovery, and
    its clock against this host's (`wall`, Unix seconds), in either direction (WARN)."""
    where = describe(conninfo)
    try:
        with connect(conninfo, connect_timeout=connect_timeout,
                     statement_timeout=statement_timeout) as conn:
            sent = wall()
            in_rec, lsn, remote = conn.execute(
                "SELECT pg_is_in_recovery(), "
                "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, "
                "extract(epoch FROM clock_timestamp())::float8"
            ).fetchone()
            clock = skew.clock_check("clock.primary", where, remote, sent, wall(), max_skew)
    except psycopg.Error as exc:
        return [Check("primary.connect", False, "unreachable", "reachable",
                      f"{where}: {error_text(exc)}; if the primary is gone, use failover")], None
    if in_rec:
        return [Check("primary.connect", False, "in recovery", "a primary",
                      f"{where} is a standby, not the primary")], None
    return [Check("primary.connect", True, f"{where} at {lsn}", "reachable",
                  data={"lsn": lsn}), clock], parse_lsn(lsn)


def wait_replayed(conninfo: str, target: int, *, connect_timeout: float, statement_timeout: float,
                  deadline: float, monotonic: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> tuple[bool, int | None, str]:
    """Poll the replica until it has replayed `target`, or `deadline` passes.

    Returns (caught_up, last replayed position, error text if the last poll failed)."""
    replayed: int | None = None
    error = ""
    while True:
        try:
            with connect(conninfo, connect_timeout=connect_timeout,
                         statement_timeout=statement_timeout) as conn:
                while True:
                    replayed = parse_lsn(conn.execute(
                        "SELECT pg_last_wal_replay_lsn()::text").fetchone()[0])
                    error = ""
                    if replayed is not None and replayed >= target:
                        return True, replayed, ""
                    if monotonic() >= deadline:
                        return False, replayed, ""
                    sleep(0.1)
        except psycopg.Error as exc:
            error = error_text(exc)
        if monotonic() >= deadline:
            return False, replayed, error
        sleep(0.5)
