"""When the daemon's reconcile pass starts: after its reason, and only once the backlog
it would otherwise duplicate has drained (or waited long enough)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrord.reconcile import schedule as rs
from mirrord.journal import Change, Journal, Outcome
from tests.fakes import Clock


class FakeHost:
    """The scheduler's whole view of a daemon (rs.Host), over a real journal."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self.catchups_pending: set[str] = set()
        self.targets = {"t": object()}
        self.stop = threading.Event()
        self.scanner = SimpleNamespace(jobs=[])
        self.recorded: list = []

    def backlog_over(self, limit: int) -> bool:
        return self.journal.has_more_ops_than(limit)

    def catching_up(self) -> bool:
        return bool(self.catchups_pending)

    def add_scan(self, name, job) -> None:
        self.scanner.jobs.append(name)

    def record(self, summary) -> None:
        self.recorded.append(summary)

    def record_trash(self, target, summary) -> None:
        self.recorded.append((target, summary))

    def refused(self, targets) -> None:
        self.recorded.append(("refused", targets))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def daemon(tmp_path: Path, clock):
    journal = Journal(tmp_path / "journal.db", {"s": ("t",)}, clock=clock)
    yield FakeHost(journal)
    journal.close()


def scheduler(host: FakeHost, clock: Clock) -> rs.ReconcileScheduler:
    return rs.ReconcileScheduler(SimpleNamespace(reconcile=SimpleNamespace(every=0)), host,
                                 clock=clock)


def queue_ops(journal: Journal, n: int) -> None:
    journal.enqueue([Change("s", f"f{i}", "put", time=1.0) for i in range(n)])


def requested_over_a_backlog(daemon, reason: str) -> rs.ReconcileScheduler:
    """A scheduler asked for a pass while one operation more than the limit is queued."""
    sched = scheduler(daemon, daemon.journal.clock)
    queue_ops(daemon.journal, rs.BACKLOG_LIMIT + 1)
    sched.request(reason)
    return sched


def test_a_start_pass_waits_for_the_catch_up_then_runs(daemon, clock):
    sched = scheduler(daemon, daemon.journal.clock)
    sched.request("start")
    daemon.catchups_pending.add("s")
    sched.on_periodic(daemon)
    assert daemon.scanner.jobs == []
    daemon.catchups_pending.clear()
    clock.now += rs.RECHECK
    sched.on_periodic(daemon)
    assert daemon.scanner.jobs == ["reconcile"]


def test_a_pass_waits_while_the_backlog_is_large_and_runs_once_it_drains(daemon, clock):
    sched = requested_over_a_backlog(daemon, "overflow")
    for _ in range(5):
        clock.now += rs.RECHECK
        sched.on_periodic(daemon)
    assert daemon.scanner.jobs == []
    # the shipper finishes a few: at the limit the pass may start
    ops = daemon.journal.claim("t", 1)
    daemon.journal.ack([Outcome(op, shipped_kind="put") for op in ops])
    clock.now += rs.RECHECK
    sched.on_periodic(daemon)
    assert daemon.scanner.jobs == ["reconcile"]


def test_failed_operations_do_not_hold_a_pass_back(daemon, clock):
    sched = scheduler(daemon, daemon.journal.clock)
    queue_ops(daemon.journal, rs.BACKLOG_LIMIT + 1)
    ops = daemon.journal.claim("t", rs.BACKLOG_LIMIT + 1)
    daemon.journal.ack([Outcome(op, error="refused") for op in ops])   # retried later, with backoff
    sched.request("watch_error")
    sched.on_periodic(daemon)
    assert daemon.scanner.jobs == ["reconcile"]


def test_a_backlog_that_never_drains_delays_a_pass_by_max_wait_at_most(daemon, clock, caplog):
    sched = requested_over_a_backlog(daemon, "schedule")
    sched.on_periodic(daemon)
    clock.now += rs.MAX_WAIT - 1
    sched.on_periodic(daemon)
    assert daemon.scanner.jobs == []
    clock.now += 2
    with caplog.at_level("WARNING", logger="mirrord.reconcile"):
        sched.on_periodic(daemon)
    assert daemon.scanner.jobs == ["reconcile"]
    assert "backlog has not drained" in caplog.text


def test_the_backlog_is_counted_cheaply_up_to_the_limit(daemon):
    queue_ops(daemon.journal, 5)
    assert daemon.journal.has_more_ops_than(4) and not daemon.journal.has_more_ops_than(5)


def test_a_pass_s_retention_run_is_recorded_as_the_daemon_s_own(daemon, clock):
    """A breaker: the retention run each daemon pass ends with was never stored, so its
    `base` (the mirrored bytes) never entered the percentage cap's high-water mark."""
    sched = scheduler(daemon, clock)
    summary, kept = SimpleNamespace(target="t", refused_deletes=0), object()
    sched.on_scan(daemon, "reconcile", ("reconcile", "start", [summary], {"t": kept}))
    assert daemon.recorded == [summary, ("t", kept)]


def test_a_pass_that_refused_deletes_tells_the_host_which_targets(daemon, clock):
    """The daemon holds lost a source whose root is empty beside such a target
    (daemon_roots.hold_empty); a pass that refused nothing says nothing."""
    from mirrord.reconcile.result import PassSummary
    sched = scheduler(daemon, clock)
    sched.on_scan(None, "reconcile", ("reconcile", "start", [PassSummary("t")], {}))
    assert not any(r[0] == "refused" for r in daemon.recorded if isinstance(r, tuple))
    sched.on_scan(None, "reconcile", ("reconcile", "start",
                                      [PassSummary("t", refused_deletes=3), PassSummary("u")], {}))
    assert ("refused", {"t"}) in daemon.recorded
