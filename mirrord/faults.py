"""Fault points for the crash tests: hold a worker at a named point until a test lets it go.

Off (one dictionary lookup at import, nothing per op) unless the environment variable
MIRRORD_FAULT_DIR names a directory. Then, at a point, when the file `<dir>/<point>`
exists and one of its lines `TARGET GLOB` matches the op's target name and source-relative
path (fnmatch, `*` for any target), the worker appends `TARGET PATH` to
`<dir>/<point>.reached` and waits while `<dir>/<point>` exists and still holds a line
matching it (HOLD_MAX seconds at most): a test lets one worker go by removing its line,
and every one by removing the file.

Two points sit in Shipper.run_ops after the target did an op and before its outcome is
handed back: what the op left on the target is there (a file, the parent directories a
put made, a rename done) and nothing of it is recorded. "stored" comes before the
worker's check that the file did not change while it was sent (ship_rules.unchanged): a
file changed while a worker is held there is what that check finds (the op is then a
wait, errors.ChangedWhileSent). "shipped" comes after it (a move kept as one has only
this one): a change made while a worker
is held there goes out with the next op. A test that kills the daemon (SIGKILL) while a
worker is held at either has cut an op short at a known moment, the window a real crash
hits by chance (tests/e2e/test_crash_in_flight.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from fnmatch import fnmatchcase

FAULT_DIR = os.environ.get("MIRRORD_FAULT_DIR", "")
HOLD_MAX = 600.0   # seconds: a test that forgets to let go does not hang the daemon for good


def point(name: str, target: str, paths: Iterable[str]) -> None:
    """Hold the calling worker at fault point `name` while `<dir>/<name>` exists, when one
    of `paths` (ops of `target`) matches it; returns at once when faults are off or
    nothing matches. Raises nothing (an unreadable rule file is no match)."""
    if not FAULT_DIR:
        return
    rule = os.path.join(FAULT_DIR, name)
    rules = _rules(rule)
    hit = _matching(rules, target, paths)
    if not hit:
        return
    try:
        with open(rule + ".reached", "a") as fh:
            fh.writelines(f"{target} {p}\n" for p in hit)
    except OSError:
        return
    deadline = time.monotonic() + HOLD_MAX
    while time.monotonic() < deadline and _matching(_rules(rule), target, hit):
        time.sleep(0.05)


def _rules(rule: str) -> list[list[str]]:
    """The `TARGET GLOB` lines of the file `rule`; none when it is gone or unreadable."""
    try:
        with open(rule) as fh:
            return [line.split(None, 1) for line in fh if line.strip()]
    except OSError:
        return []


def _matching(rules: list[list[str]], target: str, paths: Iterable[str]) -> list[str]:
    return [p for p in paths for r in rules if len(r) == 2
            and fnmatchcase(target, r[0]) and fnmatchcase(p, r[1].strip())]
