"""What a reconcile session reports when its repairs do not go through: one error line
per cause, not one per file. A target that went down in a repair of thousands of files
printed 20 identical lines and '... and 2956 more errors', and stored as many; a run
stopped early (SIGTERM) did the same with 'stopped before it was shipped'."""

from __future__ import annotations

import dataclasses
import threading

from mirrord.config.model import TargetConfig
from mirrord.reconcile.session import Session
from mirrord.targets.memory import MemoryTarget
from tests.unit.test_reconcile import make_cfg, source

LOST = "not recorded: the journal could not be written for 60s"


def setup(tmp_path):
    src = source(tmp_path, {f"f{i:03d}": b"x" for i in range(50)})
    target = MemoryTarget()
    target.files["stray"] = (b"not at the source", 0.0)
    cfg = make_cfg(tmp_path, [src])
    return dataclasses.replace(cfg, targets={"memory": TargetConfig("memory", "memory", 1)}), target


def test_repairs_failing_for_one_cause_are_one_error_line(tmp_path):
    cfg, target = setup(tmp_path)

    def outbox(changes, ticket):     # the journal's owner gave up on every change
        ticket.lost(changes, LOST)

    summary = Session(cfg, outbox=outbox, reason="command").run_target(target)
    assert summary.errors == [f"50 changes failed (first: put 'f000'): {LOST}"]
    assert summary.deleted == 0 and summary.refused_deletes == 1
    assert "50 repairs failed" in summary.delete_refusal[0]


def test_a_single_failure_keeps_its_own_line(tmp_path):
    cfg, target = setup(tmp_path)

    def outbox(changes, ticket):
        ticket.lost([c for c in changes if c.path == "f007"], "EACCES")
        ticket.recorded(changes)
        ticket.resolve("up", {}, [c.path.encode() for c in changes if c.path != "f007"],
                       now=0.0)

    summary = Session(cfg, outbox=outbox, reason="command").run_target(target)
    assert summary.errors == ["put 'f007': EACCES"]


def test_a_stopped_session_counts_what_it_left_in_one_line(tmp_path):
    cfg, target = setup(tmp_path)
    stop = threading.Event()

    def outbox(changes, ticket):     # recorded, never shipped: then the run is stopped
        ticket.recorded(changes)
        stop.set()

    summary = Session(cfg, outbox=outbox, reason="command", stop=stop).run_target(target)
    assert [e for e in summary.errors if e.startswith("stopped")] == [
        "stopped before the end of the pass",
        ("stopped: 50 changes not shipped yet (they stay queued in the journal: the daemon "
         "or the next reconcile ships them)")]
    assert summary.refused_deletes == 1 and summary.deleted == 0
    assert "the pass was stopped" in summary.delete_refusal[0]


def test_failures_of_one_cause_naming_each_its_path_are_one_line(tmp_path):
    """Each file's error names its own path (relative to the target: below a dest, here
    'site/'): still one cause, one line, the first one's text shown."""
    cfg, target = setup(tmp_path)

    def outbox(changes, ticket):
        for c in changes:
            ticket.lost([c], f"PermanentError: EPERM: Operation not permitted: 'site/{c.path}'")

    summary = Session(cfg, outbox=outbox, reason="command").run_target(target)
    assert summary.errors == [("50 changes failed (first: put 'f000'): PermanentError: EPERM: "
                               "Operation not permitted: 'site/f000'")]
