"""The heartbeat document: one type, written by the daemon and read by failover and health.

The daemon on the primary rewrites `<target root>/.mirrord/heartbeat.json` on every
target each `[mirrord] heartbeat_interval` seconds; the mirror host reads it (through
the target interface, never writing the mirror) to know how fresh the file mirror
is. Version 1 fields, all present in every document this code writes:

- `version` (1), `time` (ISO 8601 UTC, ms), `unix` (seconds since the epoch, float):
  when it was written, by the primary's clock (the reader allows for skew);
- `host`, `target`: who wrote it, for which target;
- `pending` (int), `oldest_pending_age` (seconds): changes not yet on this target;
- `interval` (seconds): how often it is rewritten;
- `degraded` (bool), `unwatched_directories` (int): a source of this target has
  directories that could not be watched (rescanned meanwhile), or (`degraded` alone) a
  file system mounted below its root that is gone (mirrord.submounts) or its root
  itself lost (mirrord.daemon_roots);
- `state` (str, optional): the target's named state (initial_sync, catching_up,
  in_sync, degraded, stalled) where the writer knows it (mirrord.target_state);
- `reason` (str, optional): that state's one-line reason for operators (the same words
  as `mirrord status` and the daemon's `/ready`), e.g. which source has its deletes held;
- `trash_files` (int), `trash_bytes` (int), `trash_oldest` (seconds since the epoch, or
  null), optional: what the target's trash holds (`keep_deleted`) as of the last
  retention run; 0 / null when it keeps nothing or has not been looked at yet.

Readers accept older documents that lack the optional fields.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

NAME = "heartbeat.json"
VERSION = 1


@dataclass(frozen=True)
class Heartbeat:
    """One heartbeat; times in seconds."""

    unix: float
    time: str
    host: str
    target: str
    pending: int = 0
    oldest_pending_age: float = 0.0
    interval: float = 0.0
    degraded: bool = False
    unwatched_directories: int = 0
    state: str = ""
    reason: str = ""
    trash_files: int = 0
    trash_bytes: int = 0
    trash_oldest: float | None = None

    @classmethod
    def now(cls, *, host: str, target: str, clock=time.time, **fields) -> "Heartbeat":
        """A heartbeat dated by `clock` (seconds since the epoch)."""
        unix = clock()
        return cls(unix=unix, time=iso(unix), host=host, target=target, **fields)

    def to_json(self) -> bytes:
        """The document as written to the target (UTF-8 JSON, `version` first)."""
        doc = {"version": VERSION, **asdict(self)}
        doc["oldest_pending_age"] = round(max(0.0, self.oldest_pending_age), 3)
        return json.dumps(doc).encode()


def parse(data: bytes) -> Heartbeat:
    """The heartbeat in `data`; ValueError naming what is wrong when it is not one. Every
    number must be finite: NaN and Infinity (JSON has neither, Python's json reads both,
    and float() takes "nan" and "inf" strings) reached /ready's body and failover.log as
    bare NaN / Infinity, which strict JSON parsers refuse (a breaker), and an infinite
    count raised OverflowError past this function."""
    try:
        doc = json.loads(data, parse_constant=_no_constant)
    except ValueError as exc:   # JSONDecodeError, UnicodeDecodeError, _no_constant's
        raise ValueError(f"heartbeat is not JSON: {exc}") from None
    except RecursionError:   # arrays nested 200,000 deep: a traceback from failover --force
        raise ValueError("heartbeat is not JSON: nested too deep") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ValueError(f"heartbeat has no version {VERSION} document")
    try:
        unix = _stamp(doc["unix"]) if "unix" in doc else _iso_to_unix(str(doc["time"]))
        return Heartbeat(
            unix=unix, time=str(doc.get("time", "")), host=str(doc.get("host", "")),
            target=str(doc.get("target", "")), pending=_count(doc.get("pending", 0)),
            oldest_pending_age=_finite(doc.get("oldest_pending_age") or 0.0),
            interval=_finite(doc.get("interval") or 0.0), degraded=bool(doc.get("degraded", False)),
            unwatched_directories=_count(doc.get("unwatched_directories", 0)),
            state=str(doc.get("state", "")), reason=str(doc.get("reason") or ""),
            trash_files=_count(doc.get("trash_files") or 0),
            trash_bytes=_count(doc.get("trash_bytes") or 0),
            trash_oldest=_finite(doc["trash_oldest"]) if doc.get("trash_oldest") else None)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"heartbeat field missing or malformed: {exc}") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(value: object) -> float:
    """A JSON number (int or float, not a bool, not a string: mirrord writes numbers, and a
    string "123" was taken while true was refused: a breaker) that is finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{str(value)[:40]!r} is not a number")
    number = float(value)   # OverflowError for an int past a float
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


MAX_UNIX = 1e11     # seconds: the year 5138. A stamp beyond is no clock's (1e308 was shown
# as a skew of 300 digits)


def _stamp(value: object) -> float:
    """A heartbeat's `unix`: a finite number of seconds from 0 to MAX_UNIX."""
    number = _finite(value)
    if not 0 <= number < MAX_UNIX:
        raise ValueError(f"unix {number:.6g} is not a time stamp (0 to {MAX_UNIX:.0e} s)")
    return number


def _count(value: object) -> int:
    """A count as mirrord writes it: an int from 0 to 2**63 - 1; ValueError otherwise. A
    bool (true read as 1), a negative (-5 "changes not yet shipped"), a float (1e300
    printed as a 300-digit count) or an int too large for a float (it dropped every
    /metrics scrape) is no count (breaker J)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"{value!r} is not a count")
    return value


def iso(ts: float) -> str:
    """Seconds since the epoch as ISO 8601 UTC with milliseconds: 2026-11-29T09:41:15.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _iso_to_unix(text: str) -> float:
    """`time` (ISO 8601) -> seconds since the epoch. A stamp without an offset is UTC, as
    this document's `time` always is: datetime.timestamp() would take a naive one as this
    host's local time and misjudge a fresh heartbeat by the host's UTC offset."""
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()
