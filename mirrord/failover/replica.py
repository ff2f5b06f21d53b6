"""The read-only replica (and, for switchover, the primary), asked with psycopg 3.

Every connection is bounded by [failover] connect_timeout and every query by
statement_timeout (and a client-side deadline: pgconn). What is read is judged
by replica_judge, which is pure, so the lag arithmetic is tested without a server.

No password ever leaves this module: conninfo passwords are registered with
logsetup's redaction and only host, port, dbname and user are ever shown.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import psycopg
from psycopg.conninfo import conninfo_to_dict

from mirrord.failover import pgconn, skew
from mirrord.failover.replica_judge import (  # noqa: F401 (the replica's API, re-exported)
    ReplicaStatus,
    for_failback,
    format_lsn,
    judge,
    parse_lsn,
    replay_lag_bytes,
    replay_lag_seconds,
    same_system,
)
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


def system_identifier(conn: psycopg.Connection) -> int | None:
    """The cluster's system identifier (pg_control_system(), PostgreSQL 9.6 and later;
    initdb sets it, and a physical standby or pg_basebackup keeps it), or None when it
    cannot be read: a hardened server may revoke the function, and that proves nothing
    (the connection is in autocommit, so the failed statement leaves it usable).
    The privilege is asked first: a revoked function read anyway put a "permission
    denied" ERROR in the server's log on every run."""
    try:
        if not conn.execute("SELECT has_function_privilege("
                            "'pg_catalog.pg_control_system()', 'EXECUTE')").fetchone()[0]:
            return None
        row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row and row[0] is not None else None


# --------------------------------------------------------------- server part


def describe(conninfo: str) -> str:
    """host:port/dbname user=..., never the password: redacted (libpq takes a dbname
    that is itself a URI or a conninfo, `dbname='postgresql://u:pw@h/db'`, and its
    password came out with the dbname), nor a host holding an '@' (in a URI whose password
    has a raw '@', libpq ends the password there and reads the rest as the host)."""
    try:
        d = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(unparseable conninfo)"
    host = str(d.get("host", "localhost"))
    if "@" in host:   # the rest of a password with a raw '@' (config.addresses refuses it)
        host = "(host not shown: it holds an '@')"
    return redact(f"{host}:{d.get('port', 5432)}/{d.get('dbname', '')} user={d.get('user', '')}")


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


# how long a reading that finds WAL received but not replayed waits for replay to reach it
# (settle), and how often it looks meanwhile: seconds
REPLAY_SETTLE = 0.5
REPLAY_POLL = 0.02
_POLL_SQL = "SELECT pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(), now()"


def settle(conn: psycopg.Connection, st: ReplicaStatus, *, seconds: float = REPLAY_SETTLE,
           monotonic: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> ReplicaStatus:
    """`st` (WAL received but not replayed, replay not paused) after giving replay up to
    `seconds` to reach what was received, polled every REPLAY_POLL.

    Lag is measured the repmgr way (replica_judge): zero when everything received is
    replayed, else now() minus the last replayed commit's time. On an idle primary that
    commit may be minutes old, and the primary still writes small records of its own
    (a running-xacts snapshot every 15 s, a checkpoint): a reading taken in the
    milliseconds between their receipt and their replay measured the replica minutes
    behind, and refused a failover at random (a test run: "replay lag 60.0s", 96 B
    unreplayed, right after the replica was caught up). So:
    - replay reached what was received and no commit was replayed meanwhile: only such
      records were in the gap, lag 0 (replay_lsn becomes receive_lsn);
    - a commit was replayed meanwhile: the lag is the replica's now() minus that newest
      commit's time, from the same poll (a replica whose WAL receiver is the bottleneck,
      a slow link or a reconnect, keeps replay level with what arrived: its commits'
      age is its lag, never taken as 0: a review);
    - neither: the first reading stands whole (an apply delay, a replay stuck on a lock).
    A poll that fails ends the wait with what was read so far: psycopg.Error is never
    raised from here (the reading stood before the wait)."""
    deadline = monotonic() + seconds
    replay, newest = st.replay_lsn, None
    assert st.receive_lsn is not None and replay is not None
    try:
        while replay < st.receive_lsn and monotonic() < deadline:
            sleep(REPLAY_POLL)
            lsn, last, now = conn.execute(_POLL_SQL).fetchone()
            replay = parse_lsn(lsn) or replay
            if last is not None and last != st.last_replay:
                newest = (now, last)
    except psycopg.Error:
        pass
    if newest is not None:
        return replace(st, now=newest[0], last_replay=newest[1])
    if replay >= st.receive_lsn:
        return replace(st, replay_lsn=st.receive_lsn)
    return st


def read_status(conn: psycopg.Connection, *, settle_for: float = REPLAY_SETTLE,
                identify: bool = False) -> ReplicaStatus:
    """The replica's status in one statement; WAL received but not replayed, replay not
    paused, is given `settle_for` seconds to be replayed (settle). psycopg.Error from the
    server or the connection. `identify`: read the system identifier too (switchover and
    failback compare it; /ready, polled every [health] interval, does not need it)."""
    in_rec, receive, replay, now, last, version = conn.execute(_STATUS_SQL).fetchone()
    if version >= 140000:
        pause = conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] if in_rec \
            else "not paused"
    else:
        paused = conn.execute("SELECT pg_is_wal_replay_paused()").fetchone()[0] if in_rec else False
        pause = "paused" if paused else "not paused"
    row = conn.execute(_RECEIVER_SQL).fetchone()
    st = ReplicaStatus(bool(in_rec), parse_lsn(receive), parse_lsn(replay), now, last, pause,
                       row[0] if row else None, row[1] if row else None,
                       system_identifier(conn) if identify else None)
    if st.in_recovery and pause == "not paused" and st.receive_lsn is not None \
            and st.replay_lsn is not None and st.receive_lsn > st.replay_lsn:
        st = settle(conn, st, seconds=settle_for)
    return st


@dataclass(frozen=True)
class Reading:
    """One look at the replica: its status, or why it could not be read."""

    where: str                      # host:port/dbname user=..., never the password
    status: ReplicaStatus | None
    error: str = ""


def read_replica(conninfo: str, *, connect_timeout: float, statement_timeout: float,
                 identify: bool = False) -> Reading:
    """Connect and read the status; never raises for an unreachable or failing server."""
    where = describe(conninfo)
    try:
        with connect(conninfo, connect_timeout=connect_timeout,
                     statement_timeout=statement_timeout) as conn:
            return Reading(where, read_status(conn, identify=identify))
    except psycopg.Error as exc:
        return Reading(where, None, error_text(exc))


def judge_reading(reading: Reading, *, max_lag: float,
                  max_skew: float = skew.DEFAULT_MAX_SKEW) -> list[Check]:
    """The checks of one reading (pure); an unreachable replica is one failed check."""
    if reading.status is None:
        return [Check("replica.connect", False, "unreachable", "reachable",
                      f"{reading.where}: {reading.error}")]
    ident = reading.status.system_id
    data = {"system_identifier": str(ident)} if ident is not None else {}
    return [Check("replica.connect", True, reading.where, "reachable", data=data)] + \
        judge(reading.status, max_lag, max_skew)


def check_replica(conninfo: str, *, connect_timeout: float, statement_timeout: float,
                  max_lag: float, max_skew: float = skew.DEFAULT_MAX_SKEW) -> list[Check]:
    """Connect to the replica and judge it (read_replica, then judge_reading)."""
    reading = read_replica(conninfo, connect_timeout=connect_timeout,
                           statement_timeout=statement_timeout, identify=True)
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
            ident = system_identifier(conn)
    except psycopg.Error as exc:
        return [Check("primary.connect", False, "unreachable", "reachable",
                      f"{where}: {error_text(exc)}; if the primary is gone, use failover")], None
    if in_rec:
        return [Check("primary.connect", False, "in recovery", "a primary",
                      f"{where} is a standby, not the primary")], None
    data = {"lsn": lsn} if ident is None else {"lsn": lsn, "system_identifier": str(ident)}
    return [Check("primary.connect", True, f"{where} at {lsn}", "reachable",
                  data=data), clock], parse_lsn(lsn)


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
