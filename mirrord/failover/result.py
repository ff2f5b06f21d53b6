"""What a failover run found and did: checks, steps, and how they print and log.

A Check is one precondition with its measured value and its limit; a failed
check refuses the run (exit 3) unless it is only a warning or --force was
given. A Step is one change the run makes (or, in a dry run, would make).
Both are plain data so the plan can be built, printed and logged without
touching any service.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mirrord.logsetup import redact_doc

FAIL, WARN = "fail", "warn"
LOG_NAME = "failover.log"


@dataclass
class Check:
    name: str
    ok: bool
    value: str
    limit: str = "-"
    message: str = ""
    severity: str = FAIL        # FAIL refuses the run, WARN is only reported
    forced: bool = False        # failed, but --force accepted it
    data: dict = field(default_factory=dict)   # raw measurements for the JSON log

    @property
    def refuses(self) -> bool:
        return not self.ok and self.severity == FAIL and not self.forced

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        if self.severity == WARN:
            return "WARN"
        return "FAIL (forced)" if self.forced else "FAIL"

    def line(self) -> str:
        text = f"  {self.status:<13} {self.name:<24} value={self.value}  limit={self.limit}"
        return text + (f"  -- {self.message}" if self.message and not self.ok else "")

    def summary(self) -> str:
        return f"{self.name} (value {self.value}, limit {self.limit}): {self.message}"

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["status"] = self.status
        if self.ok:
            doc["message"] = ""   # the message explains a failure only
        return doc


PLANNED, DONE, UNCHANGED, FAILED, SKIPPED = "planned", "done", "unchanged", "failed", "skipped"


@dataclass
class Step:
    name: str          # e.g. "app config", "memcached 127.0.0.1:11211", "reload"
    action: str        # what it does, in words
    status: str = PLANNED
    detail: str = ""   # what happened (or why not)
    finish: str = ""   # how to do it by hand if it did not happen
    kind: str = ""     # "flip", "flush", "reload", "check" or "hook": which executor runs it
    server: tuple[str, int] | str | None = None   # for "flush": (host, port) or a socket path
    hook: str = ""     # for "hook": its name, e.g. "post_failover"

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, SKIPPED)

    def line(self) -> str:
        return f"  {self.status:<10} {self.name:<28} {self.detail or self.action}"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Run:
    command: str
    dry_run: bool
    force: bool = False
    checks: list[Check] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    outcome: str = ""
    exit_code: int = 0
    started: float = field(default_factory=time.time)
    # the duration is measured on the monotonic clock: a clock stepped by NTP during a
    # failover (the wall clock) once made it negative in failover.log
    started_monotonic: float = field(default_factory=time.monotonic)
    phase: str = ""        # "checks", "pre hook", "steps": where an interruption fell
    notes: list[str] = field(default_factory=list)   # e.g. an interruption, output lost

    @property
    def refusals(self) -> list[Check]:
        return [c for c in self.checks if c.refuses]


def log_record(run: Run, host: str = "") -> dict:
    host = host or socket.gethostname()
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(run.started))
        + f".{int(run.started * 1000) % 1000:03d}Z",
        "command": run.command, "dry_run": run.dry_run, "force": run.force,
        "host": host, "outcome": run.outcome, "exit": run.exit_code,
        "duration": round(time.monotonic() - run.started_monotonic, 3),
        "checks": [c.to_json() for c in run.checks],
        "steps": [s.to_json() for s in run.steps],
        **({"notes": list(run.notes)} if run.notes else {}),
    }


def append_log(state_dir: Path, run: Run, host: str = "") -> None:
    """One JSON line per run, appended and fsynced; redacted as a last line of defence.

    Each string (keys too, and any object json would have shown as its str()) is redacted
    before serialising (logsetup.redact_doc): redacting the serialised line could eat
    a closing quote (`password=x"` -> `password=***`) and leave a line that is not JSON.

    A write that fails or is short (ENOSPC part-way) is undone: the file is cut back to
    its size before it (ftruncate) and OSError raised, so no fragment is left for the next
    line to be glued to (a trial: neither line parsed). A file that does not end with a
    newline (a fragment left by an older version or a crash) gets one first, so this line
    stands on its own. Relies on no other process appending between the size read and the
    cut: changing runs hold the failover lock (procedure._exclusive); a dry run does not,
    and a changing run's line written in that moment could be cut with it (a line lost,
    never a line glued). Raises OSError (also for a log that is not a regular file)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(redact_doc(log_record(run, host)), ensure_ascii=False) + "\n"
    # O_NOFOLLOW: failover runs as root in a state_dir another user may write (locks.take);
    # O_NONBLOCK and S_ISREG: a FIFO planted there blocked the run for good, lock held
    fd = os.open(state_dir / LOG_NAME, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                 | os.O_NOFOLLOW | os.O_NONBLOCK, 0o640)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = line.encode()
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            data = b"\n" + data      # end the fragment there: this line on its own
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, f"short write to {LOG_NAME}")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, st.st_size)
            raise
        os.fsync(fd)
    finally:
        os.close(fd)
