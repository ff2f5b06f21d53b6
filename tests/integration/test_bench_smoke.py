"""The benchmark suite runs end to end in its tiny mode (`python -m bench --quick`).

A smoke test only: it proves every workload starts its services and tools,
measures mirrord, writes the table and the JSON, and stops every process it
started. It asserts nothing about any time: benchmarks are never timed tests.
Peers that are not installed (lsyncd, rclone come with `make bench`) are
skipped by the suite itself and noted in the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = ("1 live latency", "2 burst to S3", "3 initial sync", "4 start-up", "6 large file to S3")


def _children_of(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
            found.append(int(name))
    return found


def test_bench_quick_runs_every_workload(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-4000:]
    assert not _children_of(proc.pid)
    result = json.loads((tmp_path / "latest.json").read_text())
    assert result["mode"] == "quick" and not result["crashed"], result["crashed"]
    rows = result["rows"]
    for workload in WORKLOADS:
        measured = [r for r in rows if r["workload"] == workload and r["mirrord"]]
        assert measured, f"no mirrord figure for {workload}:\n{out[-4000:]}"
    table = (tmp_path / "latest.md").read_text()
    assert "| workload | case | metric | mirrord |" in table
