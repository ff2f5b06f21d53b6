"""A switch under way on this host: a second run is refused AND logged; /ready says so.

Before, a run refused because another held failover.lock left no failover.log line,
and /ready said 200 meanwhile, though `mirrord failover` would be refused (a breaker).
Now /ready is 503 with the check switch.running naming the holder's pid (a warning
once this host has already switched: the mirror serves the site meanwhile).
"""

from __future__ import annotations

import subprocess
import sys

from tests.integration.test_failover_health import Service, checks
from tests.integration.test_failover_procedure import site  # noqa: F401 (fixture)

HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")


def _hold(site) -> subprocess.Popen:  # noqa: F811
    site.state.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(site.state / "failover.lock")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_run_refused_by_the_lock_is_logged_and_ready_says_503(pg, site, capsys):  # noqa: F811
    svc = Service(site)
    holder = _hold(site)
    try:
        doc = svc.wait_ready(503)
        running = checks(doc)["switch.running"]
        assert running["status"] == "FAIL" and running["data"]["pid"] == holder.pid
        assert site.run("failover") == 3
        last = site.log()[-1]
        assert last["outcome"] == "refused" and last["exit"] == 3
        assert [c["name"] for c in last["checks"]] == ["switch.running"]
        assert f"pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    try:
        assert "switch.running" not in checks(svc.wait_ready(200))
    finally:
        svc.close()


def test_once_switched_a_running_switch_is_a_warning(pg, site):  # noqa: F811
    assert site.run("failover") == 0
    svc = Service(site)
    holder = _hold(site)
    try:
        doc = svc.wait_ready(200)
        deadline_doc = doc
        for _ in range(50):   # the next measurement sees the holder
            if "switch.running" in checks(deadline_doc):
                break
            deadline_doc = svc.wait_ready(200)
        running = checks(deadline_doc)["switch.running"]
        assert running["status"] == "WARN" and deadline_doc["switched"]
    finally:
        holder.kill()
        holder.wait()
        svc.close()


def test_a_dry_run_beside_a_running_switch_exits_3_as_the_real_run(pg, site):  # noqa: F811
    """The real run would be refused (the lock is held): its dry run says so, for each
    command, switched or not (a trial: after a failover, `failback --dry-run` said 0 while
    a failover held the lock, and the real failback was refused)."""
    holder = _hold(site)
    try:
        assert site.run("failover", "--dry-run") == 3
        assert site.run("failback", "--dry-run") == 3
    finally:
        holder.kill()
        holder.wait()
    assert site.run("failover") == 0
    holder = _hold(site)
    try:
        assert site.run("failover", "--dry-run") == 3
        assert site.run("failback", "--dry-run") == 3
        assert site.run("failback") == 3
    finally:
        holder.kill()
        holder.wait()
    assert site.run("failback", "--dry-run") == 0
