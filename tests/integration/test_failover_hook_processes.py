"""Hooks as processes: a hook is done when it exits (not when every child it left closes
its output), a hook killed at hook_timeout takes its children with it, and a hook that
floods its output does not grow mirrord. Real processes; the failover runs against the
real PostgreSQL pair and memcached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def pidfile(tmp_path):
    """A file a hook writes its background child's pid to; that child is killed after."""
    path = tmp_path / "child.pid"
    yield path
    if path.exists():
        try:
            os.kill(int(path.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_a_hook_that_leaves_a_child_holding_its_output_is_done_when_it_exits(site: Site,
                                                                            pidfile, capsys):
    site.configure(hook_timeout="5s",
                   post_failover=f"sh -c 'sleep 60 & echo $! > {pidfile}; echo vip up'")
    assert site.run("failover") == 0, _output(capsys)
    step = site.log()[-1]["steps"][-1]
    assert step["name"] == "hook post_failover" and step["status"] == "done"
    assert step["detail"] == "exit 0; output: vip up"


def test_a_hook_killed_at_hook_timeout_takes_its_children_with_it(site: Site, pidfile, capsys):
    site.configure(hook_timeout="1s",
                   pre_failover=f"sh -c 'sleep 60 & echo $! > {pidfile}; wait'")
    assert site.run("failover") == 3
    check = site.check("hook.pre_failover")
    assert check["ok"] is False and "still running after 1s (hook_timeout); killed" in \
        check["value"]
    child = int(pidfile.read_text())
    for _ in range(100):                    # bounded poll: SIGKILL is delivered promptly
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child), "the hook's child outlived the hook's timeout"
    assert os.readlink(site.link) == site.original.decode()     # refused: nothing changed


FLOOD_MIB = 256
# VmHWM, the peak resident size of this process's memory since exec: getrusage's ru_maxrss
# would also count the pytest process this child was forked from.
CHILD = f"""
import re, shlex, sys
from mirrord.failover import hooks
flood = [sys.executable, "-c", "import sys\\nfor _ in range({FLOOD_MIB * 16}): "
         "sys.stdout.write('x' * 65535 + '\\\\n')\\nprint('LAST LINE')"]
r = hooks.run("post_failover", shlex.join(flood), {{}}, timeout=120)
peak = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print(r.ok, "LAST LINE" in r.output, len(r.output), peak)
"""


def test_a_hook_that_floods_its_output_keeps_only_the_tail():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          check=False, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    ok, last_seen, shown, peak_kib = proc.stdout.split()
    assert ok == "True" and last_seen == "True" and int(shown) <= 2003
    assert int(peak_kib) < FLOOD_MIB * 1024 // 2, f"{int(peak_kib) // 1024} MiB resident"
