"""failover / switchover / failback against a real PostgreSQL 15 pair and real memcached.

Each test builds a small "site" in tmp_path: the app's config link and its two
targets, a local mirror target holding a heartbeat written by the test, and an
INI file; then runs the failover CLI module the way mirrord.cli.main dispatches it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from mirrord.cli import failover as cli_failover
from mirrord.config import load
from mirrord.errors import FailoverRefused
from mirrord.targets.local import LocalTarget
from tests.services.postgres import PASSWORD


def heartbeat_doc(*, age: float = 0.0, pending: int = 0, unix: float | None = None,
                  **fields) -> bytes:
    """A heartbeat document; `fields` adds or replaces fields (state, reason, degraded...)."""
    unix = (time.time() - age) if unix is None else unix
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix)) + f".{int(unix * 1000) % 1000:03d}Z"
    return json.dumps({"version": 1, "time": stamp, "unix": unix, "host": "primary.example",
                       "target": "mirror", "pending": pending,
                       "oldest_pending_age": 0.4 if pending else 0.0, "interval": 0.2,
                       **fields}).encode()


class Site:
    """An application config link, a mirror target with a heartbeat, and the INI file."""

    def __init__(self, root: Path, pg, memcached):
        self.root, self.pg, self.memcached = root, pg, memcached
        self.etc = root / "etc"
        self.etc.mkdir()
        (self.etc / "readonly.php").write_text("<?php $wgReadOnly = true;\n")
        (self.etc / "readwrite.php").write_text("<?php $wgReadOnly = false;\n")
        self.link = self.etc / "active.php"
        self.original = b"./readwrite.php"   # relative, with ./: restored byte for byte
        os.symlink(self.original, self.link)
        self.target_lines = ["type = local", f"path = {root / 'mirror'}"]
        self.mirror = LocalTarget("mirror", root / "mirror")
        self.mirror.open()
        self.write_heartbeat()
        self.state = root / "state"
        self.state.mkdir()   # as on a deployed mirror host (the mirrord_mirror role makes it)
        self.marker = root / "reloaded"
        self.ini = root / "mirrord.ini"
        self.configure()

    def write_heartbeat(self, **kw) -> None:
        self.mirror.write_meta("heartbeat.json", heartbeat_doc(**kw))

    def configure(self, **overrides: str) -> Path:
        reload = f"{sys.executable} -c \"open('{self.marker}', 'a').write('x')\""
        failover = {
            "database": self.pg.replica_conninfo, "primary_database": self.pg.primary_conninfo,
            "max_replay_lag": "30s", "heartbeat_target": "mirror", "max_heartbeat_age": "60s",
            "mode": "symlink", "link": str(self.link), "readonly": str(self.etc / "readonly.php"),
            "readwrite": str(self.etc / "readwrite.php"),
            "memcached": self.memcached.config_value, "reload_command": reload,
            "connect_timeout": "3s", "statement_timeout": "3s", "switchover_timeout": "30s",
        }
        failover.update(overrides)
        lines = ["[mirrord]", f"state_dir = {self.state}", "",
                 "[target:mirror]", *self.target_lines, "",
                 "[failover]"] + [f"{k} = {v}" for k, v in failover.items() if v is not None]
        self.ini.write_text("\n".join(lines) + "\n")
        self.ini.chmod(0o600)
        return self.ini

    def run(self, *args: str) -> int:
        """The failover CLI module as main() dispatches it (the e2e tests run the real script)."""
        parser = argparse.ArgumentParser()
        cli_failover.add_parser(parser.add_subparsers())
        ns = parser.parse_args(args)
        try:
            return ns.func(ns, load(self.ini))
        except FailoverRefused as exc:
            print(f"mirrord: refused: {exc}", file=sys.stderr)
            return 3

    def fill_cache(self) -> None:
        for host, port in self.memcached.servers:
            Client((host, port)).set("page:Main_Page", b"cached html", noreply=False)

    def cached(self, i: int) -> bytes | None:
        return Client(self.memcached.servers[i]).get("page:Main_Page")

    def log(self) -> list[dict]:
        path = self.state / "failover.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def check(self, name: str) -> dict:
        return next(c for c in self.log()[-1]["checks"] if c["name"] == name)


@pytest.fixture
def site(tmp_path, pg, memcached) -> Site:
    return Site(tmp_path, pg, memcached)


def _output(capsys) -> str:
    cap = capsys.readouterr()
    return cap.out + cap.err


# ----------------------------------------------------------------- success


def test_failover_success_flips_flushes_reloads_and_logs(site, capsys):
    site.fill_cache()
    assert site.run("failover") == 0
    out = _output(capsys)
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
    assert site.cached(0) is None and site.cached(1) is None
    assert site.marker.read_text() == "x"
    for name in ("replica.in_recovery", "replica.wal_receiver", "replica.replay_paused",
                 "replica.replay_lag", "replica.replay_lag_bytes", "heartbeat.age",
                 "heartbeat.pending"):
        assert f"ok            {name}" in out
    record = site.log()[-1]
    assert record["command"] == "failover" and record["outcome"] == "done" and record["exit"] == 0
    assert [s["status"] for s in record["steps"]] == ["done", "done", "done", "done"]
    assert PASSWORD not in out
    assert PASSWORD not in (site.state / "failover.log").read_text()


def test_failover_twice_is_harmless(site, capsys):
    assert site.run("failover") == 0
    assert site.run("failover") == 0
    assert "unchanged" in _output(capsys)
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
    assert len(site.log()) == 2


# ----------------------------------------------------------------- refusals


def test_replay_paused_is_refused(site, pg, capsys):
    site.fill_cache()
    pg.pause_replay()
    assert site.run("failover") == 3
    out = _output(capsys)
    assert "FAIL          replica.replay_paused    value=paused  limit=not paused" in out
    assert "refused" in out and "replica.replay_paused" in out.split("refused:")[1]
    assert os.readlink(site.link) == site.original.decode()
    assert site.cached(0) == b"cached html" and not site.marker.exists()
    assert site.log()[-1]["outcome"] == "refused" and site.log()[-1]["exit"] == 3


def test_replica_stopped_is_refused_without_leaking_the_password(site, pg, capsys):
    pg.stop_replica()
    assert site.run("failover") == 3
    out = _output(capsys)
    assert "FAIL          replica.connect" in out
    assert f"127.0.0.1:{pg.replica.port}/wiki" in out
    assert PASSWORD not in out
    assert PASSWORD not in (site.state / "failover.log").read_text()
    assert os.readlink(site.link) == site.original.decode()


def test_lagging_replica_is_refused_and_accepted_with_force(site, pg, capsys):
    site.configure(max_replay_lag="1s")
    pg.write()
    pg.wait_caught_up()
    pg.set_apply_delay(120)
    lsn = pg.write()
    time.sleep(1.5)
    assert not pg.replayed(lsn)
    assert site.run("failover") == 3
    out = _output(capsys)
    assert "FAIL          replica.replay_lag" in out and "limit=1s" in out
    lag = site.check("replica.replay_lag")["data"]["seconds"]
    assert lag > 1.0
    assert site.check("replica.replay_lag_bytes")["data"]["bytes"] > 0
    assert os.readlink(site.link) == site.original.decode()

    assert site.run("failover", "--force") == 0
    out = _output(capsys)
    assert "FAIL (forced) replica.replay_lag" in out
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
    assert site.log()[-1]["force"] is True and site.log()[-1]["outcome"] == "done"


def test_idle_primary_is_not_lagging(site, pg, capsys):
    site.configure(max_replay_lag="2s")
    pg.write()
    pg.wait_caught_up()
    time.sleep(3)
    idle = pg.replica.sql("SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())")[0]
    assert idle > 2.5   # the last replayed transaction is older than the limit ...
    assert site.run("failover", "--dry-run") == 0
    out = _output(capsys)
    assert "ok            replica.replay_lag       value=0.0s  limit=2s" in out   # ... yet no lag


def test_primary_gone_is_refused_until_forced(site, pg, capsys):
    pg.stop_primary()
    pg._wait(lambda: pg.replica.sql("SELECT count(*) FROM pg_stat_wal_receiver "
                                    "WHERE status = 'streaming'")[0] == 0, "the receiver to stop")
    assert site.run("failover") == 3
    out = _output(capsys)
    assert "FAIL          replica.wal_receiver" in out
    assert "last replayed transaction committed" in out and "--force" in out
    assert site.run("failover", "--force") == 0
    assert "FAIL (forced) replica.wal_receiver" in _output(capsys)
    assert os.readlink(site.link) == str(site.etc / "readonly.php")


def test_a_second_concurrent_run_is_refused(site, capsys):
    site.state.mkdir(exist_ok=True)
    with open(site.state / "failover.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert site.run("failover") == 3
        assert "another failover, switchover or failback is running" in _output(capsys)
        assert site.run("failover", "--dry-run") == 0
    assert os.readlink(site.link) == site.original.decode()


# ----------------------------------------------------------------- memcached


def test_one_memcached_server_down(site, memcached, capsys):
    site.fill_cache()
    memcached.stop(1)
    assert site.run("failover") == 1
    out = _output(capsys)
    down = memcached.name(1)
    assert f"NOT done:  memcached {down}: unreachable" in out
    assert f"to finish: memcached {down}: printf 'flush_all" in out
    assert f"to undo:   mirrord -c {site.ini} failback" in out
    assert f"run `mirrord -c {site.ini} failover` again" in out   # no --force: none needed
    assert site.cached(0) is None                         # the other one was still flushed
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
    assert site.marker.exists()                           # and the reload still ran
    record = site.log()[-1]
    assert record["outcome"] == "failed" and record["exit"] == 1
    assert [s["status"] for s in record["steps"]] == ["done", "done", "failed", "done"]


def test_memcached_with_flush_disabled_is_reported(site, memcached, capsys):
    site.fill_cache()
    memcached.start(0, disable_flush=True)
    site.fill_cache()
    assert site.run("failover") == 1
    out = _output(capsys)
    assert f"NOT done:  memcached {memcached.name(0)}: refused" in out
    assert site.cached(1) is None


# ----------------------------------------------------------------- dry run


def test_dry_run_changes_nothing(site, capsys):
    site.fill_cache()
    assert site.run("failover", "--dry-run") == 0
    out = _output(capsys)
    assert "plan (dry run: nothing was changed)" in out
    assert f"planned    app config                   point {site.link} at" in out
    assert os.readlink(site.link) == site.original.decode()
    assert site.cached(0) == b"cached html" and site.cached(1) == b"cached html"
    assert not site.marker.exists()
    assert sorted(p.name for p in site.state.iterdir()) == ["failover.log"]
    assert site.log()[-1]["outcome"] == "dry-run"
    assert site.run("failback", "--dry-run") == 0
    assert site.run("switchover", "--dry-run") == 0
    assert os.readlink(site.link) == site.original.decode()
    assert not site.marker.exists()


# ----------------------------------------------------------------- failback


def test_failover_then_failback_restores_the_link_byte_for_byte(site, capsys):
    site.fill_cache()
    assert site.run("failover") == 0
    site.fill_cache()
    assert site.run("failback") == 0
    assert os.readlink(os.fsencode(site.link)) == site.original
    assert site.cached(0) is None and site.cached(1) is None
    assert site.run("failback") == 0                      # twice: harmless
    assert os.readlink(os.fsencode(site.link)) == site.original
    assert [r["command"] for r in site.log()] == ["failover", "failback", "failback"]


def test_flagfile_mode_creates_and_removes_the_flag(site, capsys):
    flag = site.root / "readonly.lock"
    site.configure(mode="flagfile", flag=str(flag), link=None, readonly=None, readwrite=None,
                   message="Read-only: served from the mirror.")
    assert site.run("failover") == 0
    assert flag.read_text() == "Read-only: served from the mirror.\n"
    assert site.run("failover") == 0
    assert site.run("failback") == 0
    assert not flag.exists()


def test_failback_refused_while_the_primary_is_down(site, pg, capsys):
    assert site.run("failover") == 0
    pg.stop_primary()
    assert site.run("failback") == 3
    assert "FAIL          primary.connect" in _output(capsys)
    assert os.readlink(site.link) == str(site.etc / "readonly.php")


# ----------------------------------------------------------------- heartbeat


def test_stale_heartbeat_is_reported_by_failover(site, capsys):
    site.write_heartbeat(age=300, pending=3)
    assert site.run("failover") == 0           # a warning: it is the primary that is gone
    out = _output(capsys)
    assert re.search(r"WARN          heartbeat.age            value=30\d\.\ds  limit=60s", out)
    assert "WARN          heartbeat.pending        value=3 (oldest 0.4s)  limit=0" in out
    assert site.check("heartbeat.age")["status"] == "WARN"


def test_missing_heartbeat_is_reported(site, capsys):
    """A mirror holding files but no heartbeat: a warning (the primary that writes it may
    be the one gone). The same root holding nothing mirrored is no mirror: a FAIL (an
    unmounted mount point: mirrord.targets.root_check)."""
    (site.root / "mirror" / ".mirrord" / "heartbeat.json").unlink()
    (site.root / "mirror" / "a.jpg").write_bytes(b"mirrored")
    assert site.run("failover", "--dry-run") == 0
    assert "WARN          heartbeat.age            value=none" in _output(capsys)
    (site.root / "mirror" / "a.jpg").unlink()
    assert site.run("failover", "--dry-run") == 3
    assert "FAIL          heartbeat.age            value=none" in _output(capsys)


def test_switchover_refuses_a_stale_heartbeat(site, capsys):
    site.configure(switchover_timeout="1.5s")
    site.write_heartbeat(age=300)
    assert site.run("switchover") == 3
    out = _output(capsys)
    assert "FAIL          heartbeat.age" in out and "FAIL          heartbeat.new" in out
    assert os.readlink(site.link) == site.original.decode()


# ----------------------------------------------------------------- switchover


class HeartbeatWriter(threading.Thread):
    """Stands in for the daemon on the primary: a heartbeat every 0.2 s."""

    def __init__(self, site: Site, pending: int = 0):
        super().__init__(daemon=True)
        self.site, self.pending, self.stopped = site, pending, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.site.write_heartbeat(pending=self.pending)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.join()


def test_switchover_waits_for_the_replica_to_catch_up(site, pg, capsys):
    site.configure(max_replay_lag="1h")
    pg.set_apply_delay(2)
    lsn = pg.write()
    assert not pg.replayed(lsn)
    with HeartbeatWriter(site, pending=2) as writer:
        threading.Timer(1.0, lambda: setattr(writer, "pending", 0)).start()
        t0 = time.monotonic()
        assert site.run("switchover") == 0
        took = time.monotonic() - t0
    out = _output(capsys)
    assert pg.replayed(lsn)
    assert took >= 1.0
    waited = site.check("switchover.replica_caught_up")["data"]["waited"]
    assert waited >= 0.8, out
    assert "ok            switchover.replica_caught_up" in out
    assert "ok            heartbeat.pending" in out and "ok            heartbeat.new" in out
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
    print(f"\nswitchover waited {waited:.2f}s for replay, total {took:.2f}s", file=sys.__stderr__)


def test_switchover_times_out_on_a_replica_that_does_not_catch_up(site, pg, capsys):
    site.configure(max_replay_lag="1h", switchover_timeout="1s")
    pg.set_apply_delay(120)
    pg.write()
    with HeartbeatWriter(site):
        assert site.run("switchover") == 3
    out = _output(capsys)
    assert "FAIL          switchover.replica_caught_up" in out and "B behind" in out
    assert os.readlink(site.link) == site.original.decode()


def test_switchover_refused_when_the_primary_is_down(site, pg, capsys):
    pg.stop_primary()
    assert site.run("switchover") == 3
    out = _output(capsys)
    assert "FAIL          primary.connect" in out and "use failover" in out
    assert PASSWORD not in out


def test_switchover_refuses_while_the_primary_keeps_committing(site, pg, capsys):
    """A breaker: switchover run while the application still wrote (the README says to
    stop writes first) flipped, said done and exit 0, and the replica lacked the rows
    committed after the position it had waited for. It now looks at the primary again
    right before the flip and refuses while its WAL keeps moving."""
    site.configure(max_replay_lag="1h", switchover_timeout="3s")
    stop = threading.Event()

    def commit_all_along():
        while not stop.wait(0.05):
            pg.write()
    writer = threading.Thread(target=commit_all_along, daemon=True)
    writer.start()
    try:
        with HeartbeatWriter(site):
            assert site.run("switchover") == 3
    finally:
        stop.set()
        writer.join()
    out = _output(capsys)
    assert "FAIL          switchover.primary_quiet" in out and "WAL moved from" in out, out
    assert "stop writes on the primary first" in out
    assert os.readlink(site.link) == site.original.decode()
    with HeartbeatWriter(site):   # writes stopped: the same switchover goes ahead
        assert site.run("switchover") == 0
    out = _output(capsys)
    assert "ok            switchover.primary_quiet" in out and "no WAL since" in out, out
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
