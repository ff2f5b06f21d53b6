"""A real PostgreSQL 15 primary and a `pg_basebackup -R` streaming replica on loopback.

`pg_pair` (session scope) initdb's a primary as the `postgres` OS user (initdb
refuses root), with wal_level=replica, a replication-capable role `mirrord`
(password-authenticated, so tests can check the password never leaks) and a
database `wiki`; then clones a hot-standby replica onto another free port and
waits until it streams. Tests that break the pair (stop, pause, delay) call
`pg.healthy()` afterwards, or use the function-scoped `pg` fixture, which
restores a streaming, caught-up pair before each test.

Both servers are stopped at session end (fast, then immediate), never left running.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "pw-Zq81-secret"
ADMIN = "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres() -> dict:
    """Popen kwargs that drop to the postgres OS user when we are root."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _run(*argv: str, env: dict | None = None, timeout: float = 120) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **_as_postgres())
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc.stdout


@dataclass
class PgServer:
    name: str
    datadir: Path
    port: int
    sockdir: Path
    log: Path

    def start(self) -> None:
        _run(PG_BIN / "pg_ctl", "-D", self.datadir, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        try:
            _run(PG_BIN / "pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "30", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            if mode != "immediate":
                self.stop("immediate")

    @property
    def running(self) -> bool:
        proc = subprocess.run([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "status"],
                              capture_output=True, **_as_postgres())
        return proc.returncode == 0

    def conninfo(self, user: str = "mirrord", dbname: str = "wiki") -> str:
        pw = f" password={PASSWORD}" if user == "mirrord" else ""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}{pw}"

    def sql(self, query: str, params: tuple = (), *, dbname: str = "wiki"):
        """Run one statement as the superuser (autocommit); the first row, or None."""
        with psycopg.connect(self.conninfo(ADMIN, dbname), autocommit=True, connect_timeout=5) as c:
            cur = c.execute(query, params)
            return cur.fetchone() if cur.description else None


@dataclass
class PgPair:
    primary: PgServer
    replica: PgServer
    base: Path
    password: str = PASSWORD
    _counter: list = field(default_factory=lambda: [0])

    # --------------------------------------------------------- conninfo
    @property
    def primary_conninfo(self) -> str:
        return self.primary.conninfo()

    @property
    def replica_conninfo(self) -> str:
        return self.replica.conninfo()

    # --------------------------------------------------------- control
    def stop_replica(self) -> None:
        self.replica.stop()

    def start_replica(self) -> None:
        if not self.replica.running:
            self.replica.start()

    def stop_primary(self) -> None:
        self.primary.stop()

    def start_primary(self) -> None:
        if not self.primary.running:
            self.primary.start()

    def pause_replay(self) -> None:
        self.replica.sql("SELECT pg_wal_replay_pause()")
        self._wait(lambda: self.replica.sql("SELECT pg_get_wal_replay_pause_state()")[0] == "paused",
                   "replay to pause")

    def resume_replay(self) -> None:
        self.replica.sql("SELECT pg_wal_replay_resume()")

    def set_apply_delay(self, seconds: float) -> None:
        """recovery_min_apply_delay on the replica: commits are received but applied late."""
        self.replica.sql(f"ALTER SYSTEM SET recovery_min_apply_delay = '{int(seconds * 1000)}ms'")
        self.replica.sql("SELECT pg_reload_conf()")
        time.sleep(0.3)   # the startup process picks the setting up asynchronously

    def write(self, rows: int = 1) -> str:
        """Commit a write on the primary; returns the primary's WAL position after it."""
        self._counter[0] += 1
        self.primary.sql("INSERT INTO pages (body) SELECT md5(g::text) FROM generate_series(1, %s) g",
                         (rows,))
        return self.primary.sql("SELECT pg_current_wal_lsn()::text")[0]

    def replayed(self, lsn: str) -> bool:
        row = self.replica.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
        return bool(row and row[0])

    def wait_caught_up(self, timeout: float = 30) -> None:
        lsn = self.primary.sql("SELECT pg_current_wal_lsn()::text")[0]
        self._wait(lambda: self.replayed(lsn), "the replica to replay the primary's WAL", timeout)

    def wait_streaming(self, timeout: float = 60) -> None:
        def streaming() -> bool:
            row = self.primary.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            return bool(row and row[0] >= 1)
        self._wait(streaming, "the replica to stream", timeout)

    def promote_replica(self) -> None:
        """What an operator may do by hand during an outage: the replica leaves recovery and
        takes writes of its own (healthy() then clones it from the primary again)."""
        self.replica.sql("SELECT pg_promote(true, 60)")

    def rebuild_replica(self) -> None:
        """A fresh standby of the primary in place of the replica, on the same port."""
        self.replica.stop("fast")
        shutil.rmtree(self.replica.datadir)
        self.replica = _clone_replica(self.base, self.primary, port=self.replica.port)

    def healthy(self) -> None:
        """Undo whatever a test did: both up, no delay, replay resumed, streaming, caught up,
        and a promoted replica made a standby of the primary again."""
        self.start_primary()
        self.start_replica()
        if not self.replica.sql("SELECT pg_is_in_recovery()")[0]:
            self.rebuild_replica()
        self.replica.sql("ALTER SYSTEM RESET recovery_min_apply_delay")
        self.replica.sql("SELECT pg_reload_conf()")
        if self.replica.sql("SELECT pg_get_wal_replay_pause_state()")[0] != "not paused":
            self.resume_replay()
        self.wait_streaming()
        self.wait_caught_up()

    @staticmethod
    def _wait(cond, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return
            except psycopg.OperationalError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {what}")

    def stop_all(self) -> None:
        for server in (self.replica, self.primary):
            server.stop("fast")


_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 30
wal_receiver_status_interval = 1s
log_min_messages = warning
"""

_HBA = """
local all all trust
host all postgres 127.0.0.1/32 trust
host all mirrord 127.0.0.1/32 scram-sha-256
host replication mirrord 127.0.0.1/32 scram-sha-256
"""


def _make_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="mirrord-pg-"))
    base.chmod(0o755)   # the postgres user must reach its data directories
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    return base


def _init_primary(base: Path) -> PgServer:
    server = PgServer("primary", base / "primary", free_port(), base, base / "primary.log")
    _run(PG_BIN / "initdb", "-D", server.datadir, "-U", ADMIN, "--auth=trust", "-E", "UTF8",
         "--no-sync")
    with open(server.datadir / "postgresql.conf", "a") as fh:
        fh.write(_CONF.format(port=server.port, sockdir=base))
    (server.datadir / "pg_hba.conf").write_text(_HBA)
    server.start()
    server.sql(f"CREATE ROLE mirrord LOGIN REPLICATION PASSWORD '{PASSWORD}'", dbname="postgres")
    server.sql("GRANT pg_read_all_stats TO mirrord", dbname="postgres")
    server.sql("CREATE DATABASE wiki OWNER mirrord", dbname="postgres")
    server.sql("CREATE TABLE pages (id serial PRIMARY KEY, body text)")
    server.sql("GRANT ALL ON pages TO mirrord")
    return server


def _clone_replica(base: Path, primary: PgServer, port: int | None = None) -> PgServer:
    server = PgServer("replica", base / "replica", port or free_port(), base, base / "replica.log")
    _run(PG_BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", primary.port, "-U", "mirrord",
         "-D", server.datadir, "-R", "-X", "stream", "-c", "fast", "--no-sync",
         env={"PGPASSWORD": PASSWORD})
    with open(server.datadir / "postgresql.conf", "a") as fh:
        fh.write(f"\nport = {server.port}\n")
    server.start()
    return server


@pytest.fixture(scope="session")
def pg_pair():
    base = _make_base()
    primary = replica = None
    try:
        primary = _init_primary(base)
        replica = _clone_replica(base, primary)
        pair = PgPair(primary, replica, base)
        pair.wait_streaming()
        pair.write()
        pair.wait_caught_up()
        yield pair
    finally:
        for server in (replica, primary):
            if server is not None:
                server.stop("fast")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def other_cluster():
    """A primary of its own initdb, beside the pair: another system identifier (a
    `database` or `primary_database` naming the wrong server, a primary made anew)."""
    base = _make_base()
    server: PgServer | None = None
    try:
        server = _init_primary(base)
        yield server
    finally:
        if server is not None:
            server.stop("fast")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg(pg_pair: PgPair) -> PgPair:
    """The pair, restored to streaming and caught up before (and after) the test."""
    pg_pair.healthy()
    yield pg_pair
    pg_pair.healthy()
