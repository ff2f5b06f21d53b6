"""CPU seconds used by a process tree, read from /proc and from wait4's rusage.

Why: on a 2-core machine the S3 server (SeaweedFS) shares the CPU with the
client it serves, so wall time alone cannot say whether a tool is slow or the
server is saturated. Every S3 arm of the bench reads, in the same run, the CPU
of the tool under test and of the server before and after the arm.

Sources (proc(5)): /proc/PID/stat fields 14-17 are utime, stime, cutime and
cstime in clock ticks (sysconf(_SC_CLK_TCK)); cutime/cstime hold the CPU of
children the process has already waited for. Summing all four over every live
process of a tree therefore counts each process once: live ones by their own
fields, reaped ones inside their parent's. A process that exits before it can
be read (a one-shot peer such as rclone) is measured by wait4(2) instead,
whose rusage covers the child and every descendant it waited for.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")   # clock ticks per second, the unit of /proc/PID/stat


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields after `(comm)` of /proc/PID/stat (state is [0], ppid [1]); None when gone.
    comm may hold spaces and parentheses, hence the split at the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2:].split()


def _children() -> dict[int, list[int]]:
    """ppid -> child pids, over every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields is not None:
                tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid`, its live descendants and every
    descendant already reaped. 0.0 when `pid` is gone; never raises for a vanished process."""
    tree = _children()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        fields = _stat_fields(p)
        if fields is None:
            continue
        # fields[11:15] are stat fields 14-17: utime stime cutime cstime (proc(5))
        total += sum(int(f) for f in fields[11:15])
        todo.extend(tree.get(p, ()))
    return total / TICK


@dataclass
class Exit:
    """How a child ended: when (time.monotonic()), its exit code and CPU seconds
    (user + system, its reaped descendants included) from wait4's rusage."""

    at: float
    returncode: int
    cpu: float


def wait_exit(pid: int, timeout: float) -> Exit | None:
    """Reap child `pid` with wait4(2) and return its Exit; None if it is still running after
    `timeout` seconds (the caller then stops it, which ends the wait in the background).

    wait4 blocks in a helper thread: the exit time is taken the moment the kernel reports
    it, with no polling interval, and nothing else (no /proc reads, no S3 requests) runs
    while the tool works. The caller must not reap `pid` elsewhere (Popen.poll/wait):
    set `popen.returncode` from the result instead.
    """
    found: list[Exit] = []

    def reap() -> None:
        try:
            _pid, status, usage = os.wait4(pid, 0)
        except ChildProcessError:   # reaped elsewhere: nothing to report
            return
        found.append(Exit(time.monotonic(), os.waitstatus_to_exitcode(status),
                          usage.ru_utime + usage.ru_stime))

    waiter = threading.Thread(target=reap, name=f"wait4-{pid}", daemon=True)
    waiter.start()
    waiter.join(timeout)
    return found[0] if found else None
