"""The heartbeat's `state` through the installed `mirrord` script (found by a breaker, brkB).

A fresh heartbeat with 0 pending whose writer said the target is degraded (a source
root lost, deletes held: nothing pending, README's state table), catching_up or
initial_sync (a catch-up walk under way), or that reports unwatched directories, once
passed every heartbeat check: `switchover` flipped and its dry run said every check was
"ok". Now heartbeat.state judges it with the same severity as heartbeat.pending: the
switchover waits for in_sync and refuses (exit 3) at switchover_timeout, its dry run
shows what it would wait for as a warning, and failover (the primary gone) warns and
goes ahead.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_failover_cli import ini, run  # noqa: F401 (fixture)

SHAPES = [
    pytest.param({"state": "degraded", "degraded": True, "unwatched_directories": 0,
                  "reason": "source up: deletes held (the target keeps what the source no "
                            "longer holds) until `mirrord resume-deletes --source up`"},
                 "resume-deletes", id="degraded-deletes-held"),
    pytest.param({"state": "degraded", "degraded": True, "unwatched_directories": 40,
                  "reason": "source up: 40 directories not watched (rescanned every few "
                            "seconds)"}, "40 directories not watched", id="degraded-unwatched"),
    pytest.param({"state": "catching_up", "degraded": False, "unwatched_directories": 0,
                  "reason": "catch-up walk of source up under way"}, "catch-up walk",
                 id="catching-up-walk"),
    pytest.param({"state": "initial_sync", "degraded": False, "unwatched_directories": 0},
                 "the first copy is not finished", id="initial-sync-no-reason"),
]


def write_heartbeat(config: Path, **fields) -> None:
    """A fresh heartbeat with 0 pending, replaced atomically as the daemon's writer does."""
    now = time.time()
    doc = {"version": 1, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
           "unix": now, "host": "primary", "target": "mirror", "pending": 0,
           "oldest_pending_age": 0.0, "interval": 0.2, **fields}
    meta = config.parent / "mirror" / ".mirrord"
    (meta / "heartbeat.tmp").write_text(json.dumps(doc))
    os.replace(meta / "heartbeat.tmp", meta / "heartbeat.json")


class Writer(threading.Thread):
    """Stands in for the primary's daemon: a new heartbeat every 0.2 s."""

    def __init__(self, config: Path, fields: dict):
        super().__init__(daemon=True)
        self.config, self.fields, self.stopped = config, fields, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            write_heartbeat(self.config, **self.fields)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.join()


def link(config: Path) -> str:
    return os.readlink(config.parent / "etc" / "active.php")


@pytest.fixture
def site(ini):  # noqa: F811 (the fixture imported above)
    with open(ini, "a") as f:
        f.write("switchover_timeout = 3s\n")
    return ini


@pytest.mark.parametrize("fields,why", SHAPES)
def test_switchover_waits_for_in_sync_and_refuses(site, fields, why):
    write_heartbeat(site, state="in_sync", reason="nothing pending")
    dry = run(site, "switchover", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr     # the harness: in_sync goes ahead
    with Writer(site, fields):
        proc = run(site, "switchover")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"FAIL          heartbeat.state          value={fields['state']}" in proc.stdout
    assert "ok            heartbeat.new" in proc.stdout      # heartbeats did arrive
    assert why in proc.stderr                                # the refusal says why
    assert link(site) == "readwrite.php"


@pytest.mark.parametrize("fields,why", SHAPES)
def test_switchover_dry_run_shows_the_state_as_what_it_would_wait_for(site, fields, why):
    """As for pending: the dry run does not wait, it warns (the run would wait, then refuse)."""
    write_heartbeat(site, **fields)
    proc = run(site, "switchover", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "heartbeat.state" in x)
    assert line.split()[0] == "WARN" and why in line, proc.stdout


@pytest.mark.parametrize("fields,why", SHAPES)
def test_failover_warns_and_goes_ahead_as_for_pending(site, fields, why):
    write_heartbeat(site, **fields)
    proc = run(site, "failover")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "heartbeat.state" in x)
    assert line.split()[0] == "WARN" and why in line, proc.stdout
    assert link(site).endswith("readonly.php")
    record = json.loads((site.parent / "state" / "failover.log").read_text().splitlines()[-1])
    state = next(c for c in record["checks"] if c["name"] == "heartbeat.state")
    assert state["status"] == "WARN" and state["data"]["state"] == fields["state"]
