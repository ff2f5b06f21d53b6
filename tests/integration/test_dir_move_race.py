"""A directory renamed while an op below it is being shipped: the mirror still ends up
exact, with no re-send of the directory, on every target type (real local, rsync, S3).

Found by CI (tests/reliability/test_watch_limits.py: `target s3 is not exact: {'missing':
['d000/moved/later']}`). The shape, from the failed run's journal: `later` is written in
d000/sub and its put is claimed; d000/sub is renamed to d000/moved before the worker looks
at the source; the put finds no file at d000/sub/later, so it runs as a delete, and its ack
comes before the watcher's rename is recorded. With nothing pending below d000/sub the
rename is kept as a move, and the move carries what the target held there, which never
included `later`. Nothing else names d000/moved/later: it stayed missing. Now a directory
move's outcome asks for a check of what lies below its new name (Outcome.check), on that
target only: the daemon queues a subtree check (Scans.check_moved), `mirrord reconcile`
runs one itself. Here every step is taken by hand, in that order: no timing is involved.
"""

from __future__ import annotations

import os
import threading
import types
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.daemon_scans import Scans
from mirrord.journal import Change, Journal, Outcome
from mirrord.pipeline import Pipeline
from mirrord.shipper import Shipper
from tests.exactness import differences, slack_ns, source_snapshot, target_snapshot
from tests.targets.conftest import make_local, make_target

S = "up"


@pytest.fixture(params=["local", "rsync", "s3"])
def target(request, tmp_path):
    t = make_target(request.param, request, tmp_path)
    t.open()
    yield t
    t.close()


class _Daemon:
    """What Scans reads of a daemon: its config, targets, scanner queue and stop flag."""

    def __init__(self, src: SourceConfig, db: Path, targets: dict):
        self.cfg = types.SimpleNamespace(source=lambda name: src,
                                         mirrord=types.SimpleNamespace(journal_path=db))
        self.targets = targets
        self.stop_requested = threading.Event()
        self.subtree_checks_pending: set = set()
        self.jobs: list = []
        self.scanner = types.SimpleNamespace(add=lambda name, job: self.jobs.append((name, job)))


def _drain(j: Journal, pipeline: Pipeline, shipper: Shipper, target) -> None:
    for _ in range(20):
        ops = j.claim(target.name, 100)
        if not ops:
            return
        pipeline.ack(shipper.run_ops(target, ops))
    raise AssertionError("the journal never drained")


def _exact(src: Path, target) -> dict:
    want = source_snapshot(src, directories=target.features.directories)
    return differences(want, target_snapshot(target), mtime_slack_ns=slack_ns(target))


def _new_file(sub: Path) -> list[Change]:
    (sub / "later").write_bytes(b"written just before the rename")
    return [Change(S, "d/sub/later", "put")]


def _chmod_of_a_shipped_file(sub: Path) -> list[Change]:
    # the stale op deletes a file the target HAD: the move then carries the hole
    os.chmod(sub / "old", 0o600)
    return [Change(S, "d/sub/old", "attr")]


def _new_directory(sub: Path) -> list[Change]:
    (sub / "n").mkdir()
    (sub / "n" / "x").write_bytes(b"in a new directory")
    return [Change(S, "d/sub/n", "mkdir"), Change(S, "d/sub/n/x", "put")]


@pytest.mark.parametrize("change", [_new_file, _chmod_of_a_shipped_file, _new_directory],
                         ids=["new-file", "chmod-of-a-shipped-file", "new-directory"])
def test_a_directory_renamed_under_an_op_in_flight_arrives_whole(tmp_path, target, change):
    src = tmp_path / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "d" / "sub" / "old").write_bytes(b"old")
    T = target.name
    source = SourceConfig(S, src, (T,))
    db = tmp_path / "journal.db"
    j = Journal(db, {S: (T,)})
    daemon = _Daemon(source, db, {T: target})
    scans = Scans(daemon)
    shipper = Shipper({T: target}, [source], {T: 2})
    pipeline = Pipeline(j, shipper, on_rescan=scans.rescan, on_check=scans.check_moved)
    try:
        j.enqueue([Change(S, "d", "mkdir"), Change(S, "d/sub", "mkdir"),
                   Change(S, "d/sub/old", "put")])
        _drain(j, pipeline, shipper, target)
        assert _exact(src, target) == {}

        changes = change(src / "d" / "sub")
        j.enqueue(changes)
        # all in flight at once, the worst case for the move: as a target without
        # directories hands them out (with directories, n/x would wait for n's row)
        in_flight = j.claim(T, 100, directories=False)
        assert sorted(op.path for op in in_flight) == sorted(c.path for c in changes)
        os.rename(src / "d" / "sub", src / "d" / "moved")      # before the worker looks
        outcomes = shipper.run_ops(target, in_flight)
        assert {o.shipped_kind for o in outcomes} == {"delete"}  # nothing at the old names
        pipeline.ack(outcomes)                                  # acked before the rename's record
        assert j.enqueue_move(S, "d/sub", "d/moved", is_dir=True) == []   # kept as a move
        _drain(j, pipeline, shipper, target)                    # the move: with a hole in it
        assert _exact(src, target) != {}
        # a check of the new name; or, where nothing at all stood below the old name (S3 has
        # no directories: the stale op took the only object), the move found nothing to move
        # and asked for the directory to be re-sent (MoveOps._make_moved_dir, ship_moves.py)
        assert [name for name, _job in daemon.jobs] in (
            [f"subtree-check:{S}:d/moved"], [f"subtree:{S}:d/moved"])
        proposed: list[Change] = []
        for _name, job in daemon.jobs:
            job(proposed.extend)
        assert proposed and all(c.path.startswith("d/moved/") and c.targets == (T,)
                                for c in proposed), proposed
        j.enqueue(proposed)
        _drain(j, pipeline, shipper, target)
        assert _exact(src, target) == {}
    finally:
        shipper.shutdown()
        j.close()


def test_only_a_directory_move_asks_for_a_check(tmp_path):
    """A file move checks its own bytes (Op.src_shipped) and asks for nothing; a directory
    move asks once, for its new name (a move that falls back re-sends the directory
    instead: Outcome.rescan)."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"f")
    target = make_local(tmp_path)
    target.open()
    T = target.name
    j = Journal(tmp_path / "journal.db", {S: (T,)})
    shipper = Shipper({T: target}, [SourceConfig(S, src, (T,))], {T: 1})
    asked: list[Outcome] = []
    pipeline = Pipeline(j, shipper, on_check=asked.append)
    try:
        j.enqueue([Change(S, "d", "mkdir"), Change(S, "d/f", "put")])
        _drain(j, pipeline, shipper, target)
        os.rename(src / "d" / "f", src / "d" / "g")
        assert j.enqueue_move(S, "d/f", "d/g", is_dir=False) == []
        _drain(j, pipeline, shipper, target)
        assert asked == []
        os.rename(src / "d", src / "e")
        assert j.enqueue_move(S, "d", "e", is_dir=True) == []
        _drain(j, pipeline, shipper, target)
        assert [(o.op.path, o.shipped_kind) for o in asked] == [("e", "move")]
    finally:
        shipper.shutdown()
        j.close()
        target.close()


def test_a_check_asked_while_one_runs_is_queued_again(tmp_path):
    """The running check may have read the shipped rows before the move was acked: a second
    request is not folded into it. One still waiting in the queue absorbs the next."""
    src = tmp_path / "src"
    src.mkdir()
    target = make_local(tmp_path)
    daemon = _Daemon(SourceConfig(S, src, ("local",)), tmp_path / "journal.db",
                     {"local": target})
    Journal(tmp_path / "journal.db", {S: ("local",)}).close()
    scans = Scans(daemon)
    source = daemon.cfg.source(S)
    scans.subtree_check(source, "d", ("local",))
    scans.subtree_check(source, "d", ("local",))
    assert len(daemon.jobs) == 1                     # waiting in the queue: one is enough
    daemon.jobs[0][1](lambda changes: None)          # it starts ...
    scans.subtree_check(source, "d", ("local",))     # ... and a request made now is queued
    assert len(daemon.jobs) == 2
    scans.subtree_check(source, "d", None)           # other targets: a check of their own
    assert len(daemon.jobs) == 3
