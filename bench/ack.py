"""Ending a tool's arm on its own acknowledgement, then confirming once on the target.

Why (issue 15): the burst used to list the whole S3 prefix every 0.1 s from the
start of each arm. On two cores that listing load competes with SeaweedFS and
costs the faster client more, so the table hid a 1.5x gap. Now nothing talks to
the server while a tool works:
- a one-shot peer (rclone, rsync) is done when its process exits (wait4);
- mirrord is done when its state database says so, read with mirrord's own
  reader (mirrord.journal.connect(readonly=True), read_backlog, iter_shipped):
  no operation queued or in flight, at least N operations acknowledged since
  the arm began, and the `shipped` table (what the target holds) lists N files.
Then the clock is stopped, the CPU of the tool and of the server is read
(bench/cpu.py), and ONE listing of the target must show every expected key at
its expected size. A listing that disagrees is an error, never a longer wait.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.common import Context, Mirrord, Proc, Row, median
from bench.cpu import tree_cpu, wait_exit

JOURNAL_POLL = 0.05   # seconds between reads of mirrord's state database (a local SQLite read)
TARGET, SOURCE = "t", "b"   # the names bench.common.mirrord_config gives them


@dataclass
class Arm:
    """One tool's run: wall seconds, CPU seconds of the tool's process tree and of the
    server's (NaN when the server is not measured)."""

    seconds: float
    tool_cpu: float
    server_cpu: float


class Meter:
    """Clock and CPU of one arm: `start()` just before the tool gets its work, `stop()` at
    its acknowledgement. `server_pid` None: the server's CPU is not measured (NaN)."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid
        self.t0 = self.tool0 = self.server0 = 0.0

    def _server(self) -> float:
        return tree_cpu(self.server_pid) if self.server_pid else math.nan

    def start(self, tool_pid: int | None = None) -> float:
        """tool_pid None: the tool is not running yet (its CPU starts at 0). Returns t0."""
        self.tool0 = tree_cpu(tool_pid) if tool_pid else 0.0
        self.server0 = self._server()
        self.t0 = time.monotonic()
        return self.t0

    def stop(self, at: float, tool_cpu_total: float) -> Arm:
        """`at`: monotonic time of the acknowledgement; `tool_cpu_total`: the tool's CPU
        seconds since it started (tree_cpu of a live tool, wait4's figure of an exited one)."""
        return Arm(at - self.t0, tool_cpu_total - self.tool0, self._server() - self.server0)


def record(row: Row, side: str, arm: Arm, files: int) -> None:
    """Append an arm to `row`: seconds to row.mirrord / row.other (side "mirrord" / "other"),
    CPU seconds per 1,000 files to row.cpu[side] and row.cpu["server_" + side]."""
    (row.mirrord if side == "mirrord" else row.other).append(arm.seconds)
    row.cpu.setdefault(side, []).append(arm.tool_cpu * 1000 / files)
    row.cpu.setdefault("server_" + side, []).append(arm.server_cpu * 1000 / files)


def cpu_summary(row: Row, side: str) -> str:
    """'tool CPU / server CPU' medians, for a log line."""
    return (f"CPU {median(row.cpu.get(side, [])):.2f} s/1k files, server "
            f"{median(row.cpu.get('server_' + side, [])):.2f} s/1k files")


# ---------------------------------------------------------------- what the target should hold


def tree_sizes(root: Path) -> dict[str, int]:
    """Relative POSIX path -> size of every regular file below root (mirrord's area skipped)."""
    out: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and ".mirrord" in dirnames:
            dirnames.remove(".mirrord")
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            key = name if rel == "." else f"{rel}/{name}"
            out[key] = os.lstat(os.path.join(dirpath, name)).st_size
    return out


def s3_sizes(client, bucket: str, prefix: str) -> dict[str, int]:
    """Key relative to `prefix` -> size, from one paginated ListObjectsV2 of the prefix
    (mirrord's own `.mirrord/` heartbeat objects skipped)."""
    out: dict[str, int] = {}
    kwargs = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
    while True:
        page = client.list_objects_v2(**kwargs)
        for o in page.get("Contents", ()):
            rel = o["Key"][len(prefix):]
            if "/.mirrord/" not in "/" + rel:
                out[rel] = o["Size"]
        if not page.get("IsTruncated"):
            return out
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def confirm(listing: Callable[[], dict[str, int]], expected: dict[str, int], who: str) -> None:
    """One listing of the target must hold exactly `expected` (key -> size).
    Raises RuntimeError naming the count and a few differing keys otherwise."""
    got = listing()
    if got == expected:
        return
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
    raise RuntimeError(f"{who} acknowledged, but the target lists {len(got)} of {len(expected)} "
                       f"keys: missing {missing[:3]} ({len(missing)}), extra {extra[:3]} "
                       f"({len(extra)}), wrong size {wrong[:3]} ({len(wrong)})")


# ---------------------------------------------------------------- acknowledgements


def journal_state(db: Path, *, count_files: bool, target: str = TARGET,
                  source: str = SOURCE) -> tuple[int, int, int]:
    """(operations queued or in flight, operations acknowledged, files of `source` in the
    `shipped` table for `target`), read from mirrord's state database with mirrord's own
    reader; (-1, 0, 0) until the daemon has made its tables. The `shipped` table is read
    only when count_files (N rows: asked only once the rest says done)."""
    import sqlite3

    from mirrord.journal import connect, iter_shipped, read_backlog
    if not db.exists():
        return -1, 0, 0
    conn = connect(db, readonly=True)
    try:
        backlog = read_backlog(conn, []).values()
        pending = sum(b.pending for b in backlog)
        acked = sum(b.extra.get("shipped", 0) for b in backlog)
        files = 0
        if count_files:
            files = sum(1 for key, *_ in iter_shipped(conn, target, source)
                        if not key.endswith(b"/"))
    except sqlite3.OperationalError:   # tables not made yet
        return -1, 0, 0
    finally:
        conn.close()
    return pending, acked, files


def wait_mirrord(m: Mirrord, n: int, *, acked_before: int = 0, timeout: float) -> float:
    """Monotonic time at which mirrord's journal first said all `n` files are shipped (see the
    module docstring). Raises RuntimeError if mirrord dies or `timeout` seconds pass."""
    assert m.proc is not None
    db = m.journal_path()
    deadline = time.monotonic() + timeout
    while True:
        if not m.proc.alive():
            raise RuntimeError(f"mirrord exited: {m.proc.log_text()[-1500:]}")
        now = time.monotonic()
        pending, acked, _ = journal_state(db, count_files=False)
        if pending == 0 and acked - acked_before >= n:
            if journal_state(db, count_files=True)[2] >= n:
                return now
        if now > deadline:
            raise RuntimeError(f"mirrord: {acked - acked_before} of {n} acknowledged, "
                               f"{pending} pending after {timeout:g} s")
        time.sleep(JOURNAL_POLL)


def acked_now(m: Mirrord) -> int:
    """Operations mirrord has acknowledged so far (the baseline of an arm)."""
    return journal_state(m.journal_path(), count_files=False)[1]


def run_to_exit(ctx: Context, argv: list[str], *, log: Path, env: dict | None,
                meter: Meter, timeout: float) -> Arm:
    """Start a one-shot peer and time it to its exit; its CPU from wait4.
    Raises RuntimeError when it times out or exits non-zero (with its log's tail)."""
    meter.start(None)
    proc = Proc(ctx, argv, log=log, env=env)
    done = wait_exit(proc.pid, timeout)
    if done is None:
        proc.stop()
        raise RuntimeError(f"{argv[0]} still running after {timeout:g} s")
    proc.popen.returncode = done.returncode   # reaped by wait4: Popen must not wait again
    arm = meter.stop(done.at, done.cpu)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {proc.log_text()[-1500:]}")
    return arm
