"""Small test doubles shared by several test modules."""

from __future__ import annotations

from pathlib import Path

from mirrord.targets.base import Target
from mirrord.targets.local import LocalTarget
from mirrord.targets.memory import MemoryTarget


class Clock:
    """A clock the test moves by hand: `clock.now += 5`."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_or_local_target(kind: str, name: str, base: Path) -> Target:
    """An opened MemoryTarget ("memory") or LocalTarget at base/mirror without fsync."""
    if kind == "memory":
        return MemoryTarget(name)
    t = LocalTarget(name, base / "mirror", fsync=False)
    t.open()
    return t
