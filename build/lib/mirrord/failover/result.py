"""What a failover run found and did: checks, steps, and how they print and log.

A Check is one precondition with its measured value and its limit; a failed
check refuses the run (exit 3) unless it is only a warning or --force was
given. A Step is one change the run makes (or, in a dry run, would make).
Both are plain data so the plan can be built, printed and logged without
touching any service.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

FAIL, WARN = "fail", "warn"


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
    kind: str = ""     # "flip", "flush" or "reload": which executor runs it
    server: tuple[str, int] | None = None   # for "flush"

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, SKIPPED)

    def line(self) -> str:
        return f"  {self.status:<10} {self.name:<28} {self.detail or self.action}"

    def to_json(self) -> dict:
        return asdict(self)
