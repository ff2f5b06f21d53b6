"""Exact modification times: nanoseconds in, nanoseconds out, never a float rounding.

A source mtime is kept to the nanosecond (stat's st_mtime_ns); floats lose the last
digits (st_mtime of a 2026 time has ~0.2 µs resolution), so every conversion here
is exact: Decimal for float -> ns, integer arithmetic for ns -> text.
"""

from __future__ import annotations

import os
from decimal import Decimal


def exact_ns(mtime: float, mtime_ns: int = 0) -> int:
    """`mtime_ns` when given (non-zero), else the float `mtime` (seconds) rounded to the nearest
    nanosecond from its exact binary value (Decimal(float) is exact; mtime * 1e9 is not)."""
    if mtime_ns:
        return mtime_ns
    return int((Decimal(mtime) * 1_000_000_000).to_integral_value())


def put_ns(mtime: float, mtime_ns: int, st: os.stat_result) -> int:
    """The mtime (ns) put() keeps: `mtime_ns` when given; else the local file's own st_mtime_ns
    when `mtime` is that time as a float (the old call, put(..., mtime=st.st_mtime), loses
    nothing); else exact_ns(mtime)."""
    if mtime_ns:
        return mtime_ns
    if ns_to_float(st.st_mtime_ns) == mtime:
        return st.st_mtime_ns
    return exact_ns(mtime)


def ns_to_float(ns: int) -> float:
    """Seconds as a float, computed exactly as os.stat computes st_mtime from st_mtime_ns."""
    sec, nsec = divmod(ns, 10**9)
    return float(sec) + nsec * 1e-9


def format_ns(ns: int) -> str:
    """Nanoseconds as decimal seconds with 9 places ("1600000000.250000000"), exactly."""
    sign = "-" if ns < 0 else ""
    sec, nsec = divmod(abs(ns), 10**9)
    return f"{sign}{sec}.{nsec:09d}"


def parse_ns(text: str | bytes) -> int:
    """Decimal seconds ("1600000000.25", find's %T@) as nanoseconds, without float rounding
    (digits past the 9th are dropped). ValueError when not a decimal number."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    sec, _, frac = text.lstrip("+-").partition(".")
    if not (sec or frac) or not (sec or "0").isdigit() or not (frac or "0").isdigit():
        raise ValueError(f"not decimal seconds: {text!r}")
    return sign * (int(sec or "0") * 10**9 + int(frac[:9].ljust(9, "0")))


def parse_find_ns(text: str | bytes) -> int:
    """find(1)'s `%T@` as nanoseconds. GNU findutils (4.9, Debian 12) prints the whole
    seconds rounded down and the fraction above them: -1500000000.123456789 s reads
    "-1500000001.8765432110", -0.5 s "-1.5000000000". Read as plain decimals (parse_ns),
    such an mtime differed from the source's at every reconcile of an rsync target, which
    re-sent it each time and never said in sync (a breaker). So the fraction is added to
    the signed whole seconds; a time after 1970 reads as parse_ns reads it. ValueError
    when not of that shape."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    sec, _, frac = text.strip().partition(".")
    digits = sec[1:] if sec[:1] in "+-" else sec
    if not digits.isdigit() or not (frac or "0").isdigit():
        raise ValueError(f"not find's %T@: {text!r}")
    return int(sec) * 10**9 + int(frac[:9].ljust(9, "0"))
