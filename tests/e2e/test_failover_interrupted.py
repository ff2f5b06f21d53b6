"""A failover interrupted, or with its output gone, still accounts for itself.

The installed console script, a real process. Before: SIGINT or SIGTERM during a run
left no failover.log line and no account, and the hook or reload_command ran on in its
own session; SIGHUP (a dropped ssh session) killed the run half-way; stdout gone
(EPIPE) after the flip ended the run with exit 1 and no log line (a breaker).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_failover_cli import MIRRORD, ini  # noqa: F401 (fixture)


def _with(ini_path: Path, **keys: str) -> Path:
    text = ini_path.read_text().replace("reload_command = true\n", "")
    ini_path.write_text(text + "".join(f"{k} = {v}\n" for k, v in keys.items()))
    return ini_path


def _log(ini_path: Path) -> list[dict]:
    path = ini_path.parent / "state" / "failover.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text().strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start(ini_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(MIRRORD), "-c", str(ini_path), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_in_the_reload_kills_it_logs_and_accounts(ini, tmp_path, sig, code):  # noqa: F811
    pidfile = tmp_path / "child.pid"
    _with(ini, reload_command=f"sh -c 'sleep 300 & echo $! > {pidfile}; wait'",
          hook_timeout="200s")
    proc = _start(ini, "failover")
    child = int(_wait_for(pidfile))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, (out, err)
    assert f"INTERRUPTED by {sig.name}" in out and "in step reload" in out
    assert f"to undo:   mirrord -c {ini} failback" in out
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the reload's child runs on"
        time.sleep(0.05)
    last = _log(ini)[-1]
    assert last["outcome"] == "interrupted" and last["exit"] == code
    assert any("in step reload" in n for n in last["notes"])
    assert os.readlink(tmp_path / "etc" / "active.php") == "readonly.php" or \
        os.readlink(tmp_path / "etc" / "active.php").endswith("readonly.php")


def test_sigterm_in_the_pre_hook_changes_nothing_and_stops_the_hook(ini, tmp_path):  # noqa: F811
    pidfile, marker = tmp_path / "hook.pid", tmp_path / "hook-finished"
    _with(ini, reload_command="true",
          pre_failover=f"sh -c 'echo $$ > {pidfile}; sleep 4; touch {marker}'")
    proc = _start(ini, "failover")
    _wait_for(pidfile)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, (out, err)
    assert "during the pre hook: nothing was changed" in out
    assert os.readlink(tmp_path / "etc" / "active.php") == "readwrite.php"
    time.sleep(5)
    assert not marker.exists(), "the pre hook ran on after mirrord was gone"
    assert _log(ini)[-1]["outcome"] == "interrupted"


def test_sighup_is_ignored_and_the_run_finishes(ini, tmp_path):  # noqa: F811
    pidfile = tmp_path / "reload.pid"
    _with(ini, reload_command=f"sh -c 'echo $$ > {pidfile}; sleep 1'")
    proc = _start(ini, "failover")
    _wait_for(pidfile)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (out, err)
    assert "mirrord failover: done" in out
    assert _log(ini)[-1]["outcome"] == "done"


def test_stdout_gone_does_not_stop_the_run_nor_its_log_line(ini, tmp_path):  # noqa: F811
    _with(ini, reload_command="true")
    proc = subprocess.Popen([str(MIRRORD), "-c", str(ini), "failover"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()   # the reader is gone before the first line (EPIPE)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert "cannot write the output" in err and "Traceback" not in err
    assert os.readlink(tmp_path / "etc" / "active.php").endswith("readonly.php")
    last = _log(ini)[-1]
    assert last["outcome"] == "done" and any("output lost" in n for n in last["notes"])


def test_stdout_closed_at_start_is_said_lost_and_nothing_lands_in_a_file(ini, tmp_path):  # noqa: F811
    """Started with descriptor 1 closed (`mirrord failover >&-`): Python's sys.stdout is
    None and every line went nowhere, with no warning and no note (a trial); and the first
    file opened took descriptor 1, so a hook's output would have landed in it. Now fd 1 is
    /dev/null, the loss is said on stderr and noted in failover.log."""
    marker = tmp_path / "hook-said"
    _with(ini, reload_command="true",
          post_failover=f"sh -c 'echo post-hook-output; echo ran > {marker}'")
    proc = subprocess.run(["sh", "-c", 'exec "$0" -c "$1" failover >&-', str(MIRRORD),
                           str(ini)], stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "cannot write the output" in proc.stderr and "Traceback" not in proc.stderr
    assert marker.exists() and os.readlink(tmp_path / "etc" / "active.php").endswith("readonly.php")
    last = _log(ini)[-1]
    assert last["outcome"] == "done" and any("output lost" in n for n in last["notes"]), last
    state = tmp_path / "state"
    for path in state.rglob("*"):   # failover.log records the hook's output on purpose
        if path.is_file() and path.name != "failover.log":
            data = path.read_bytes()
            assert b"post-hook-output" not in data and b"mirrord failover" not in data, path
