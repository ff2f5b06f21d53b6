"""Which process holds a journal row in flight, and whether that process still runs.

Two kinds of process claim rows from one state database: the daemon and `mirrord
reconcile` when no daemon runs (mirrord.reconcile.command). Either may start while the
other has rows in flight: a reconcile started with the daemon down, then the daemon
started (by systemd, by hand). A claimed row used to mean "the last run left it in
flight", so the daemon's start took another live process's in-flight rows for a
crash's leftovers: it released them (and its own workers shipped them a second time,
beside the one still shipping them) and proposed tree removals from them
(mirrord.interrupted); a reconcile reaching its next target did the same to the
daemon's rows of that target.

So each claim records its claimer (`ops.claimer`, schema 5): the claiming process's
pid and its start time (field 22 of /proc/PID/stat, clock ticks since boot: proc(5)),
so a pid reused by another process is not taken for the claimer. Only the rows of a
claimer that is gone count as interrupted; a row claimed before schema 5 (claimer
NULL) has no live claimer either.
"""

from __future__ import annotations

import os

_ME: str | None = None


def me() -> str:
    """This process's claimer id, "PID:STARTTIME" (str). Raises nothing: where
    /proc/self/stat cannot be read the start time is left out ("PID:")."""
    global _ME
    if _ME is None or not _ME.startswith(f"{os.getpid()}:"):   # after a fork: the child's
        _ME = f"{os.getpid()}:{_start_time(os.getpid()) or ''}"
    return _ME


def alive(claimer: str | None) -> bool:
    """Whether the process `claimer` names (an id from me(), or None) still runs: its pid
    exists with the same start time. None, a malformed id and a pid that is gone (or
    now another process's) are not alive. A pid whose start time cannot be read (/proc
    hides it, or refuses) but that exists is taken as alive: a live process's rows are
    never released on a guess."""
    if not claimer or ":" not in claimer:
        return False
    pid_text, start = claimer.split(":", 1)
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid <= 0:   # kill(2) would name a process group: no claimer has such a pid
        return False
    if pid == os.getpid():
        return claimer == me()
    try:
        state, now = _stat(pid)
    except FileNotFoundError:
        return signalable(pid)
    except OSError:
        return True
    # a zombie (Z: killed, not reaped yet) runs no more; an id without a start time
    # (none could be read when it was made) is matched by pid alone
    return state != "Z" and (not start or now == start)


def signalable(pid: int) -> bool:
    """Whether `pid` exists though /proc does not show it: mounted with hidepid=2, another
    user's processes are hidden (proc(5)), a reconcile run as root from the daemon's user;
    kill(2) with signal 0 still tells: EPERM, it exists; ESRCH, it does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> str | None:
    """The start time of `pid`, None when it cannot be read."""
    try:
        return _stat(pid)[1]
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, str | None]:
    """(state, starttime): fields 3 and 22 of /proc/PID/stat, counted after the last ')',
    since the command name (field 2) may hold spaces and parentheses. Raises OSError
    (FileNotFoundError: no such process)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        text = fh.read().decode("ascii", "replace")
    fields = text[text.rfind(")") + 2:].split()
    return (fields[0] if fields else "", fields[19] if len(fields) > 19 else None)
