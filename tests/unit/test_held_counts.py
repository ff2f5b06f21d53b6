"""What `mirrord status` and `mirrord resume-deletes` say is held: distinct paths, not journal
rows. A breaker's 21 held files on 3 targets read `63 deletes held`, next to `alarm: 23`."""

from __future__ import annotations

import os
import time

from mirrord.cli.status import held_count
from mirrord.journal import Change, Journal
from mirrord.journal.holds import read_holds, release

TARGETS = ("local", "s3", "rsync")


def test_held_deletes_are_counted_by_path_over_every_target(tmp_path):
    j = Journal(tmp_path / "journal.db", {"up": TARGETS})
    try:
        assert j.hold_deletes("up", reason="alarm")
        j.enqueue([Change("up", f"x/f{i}", "delete", time=time.time()) for i in range(21)])
        (h,) = read_holds(j.db)
        assert (h.waiting, h.targets) == (21, 3)
        assert held_count(h.to_json()) == "21 deletes held on 3 targets"
        (lifted,) = release(j.db, "up")
        assert (lifted.waiting, lifted.targets) == (21, 3)
    finally:
        j.close()


def test_one_target_is_not_named():
    assert held_count({"waiting": 4, "targets": 1}) == "4 deletes held"
    assert held_count({"waiting": 1}) == "1 deletes held"   # a document from before: no targets


def test_a_restores_temp_file_is_never_part_of_a_source(tmp_path):
    """`mirrord undelete --to-source` writes into `.mirrord-undelete-*` and renames it over the
    path: the temp name is excluded on every source, so its rename reads as a write of the
    path (a move from an excluded name) and it never becomes a held delete."""
    from pathlib import Path

    from mirrord.config.model import SourceConfig
    from mirrord.trash.model import Kept
    from mirrord.trash.restore import TEMP_PREFIX, _write_beneath
    from mirrord.watch.inotify import TreeWatcher

    src = SourceConfig("up", tmp_path, ("local",))
    assert src.excluded(f"{TEMP_PREFIX}0123") and src.excluded(f"a/b/{TEMP_PREFIX}x")
    assert not src.excluded("a/b/photo.jpg") and not src.excluded(f"{TEMP_PREFIX}d", is_dir=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "photo.jpg").write_bytes(b"damaged")
    st = (tmp_path / "a" / "photo.jpg").stat()

    class Target:   # the kept bytes, as a target's trash_fetch writes them
        def trash_fetch(self, kept, dest):
            Path(dest).write_bytes(b"restored")

    kept = Kept("a/photo.jpg", "20260101T000000.000000Z", "overwritten", 8, 10**18, "k", 0o644)
    w = TreeWatcher(str(tmp_path), src.excluded)
    try:
        w.start()
        dfd = os.open(tmp_path / "a", os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert _write_beneath(Target(), kept, dfd, "photo.jpg", st, force=True) is None
        finally:
            os.close(dfd)
        events = []
        for _ in range(20):
            events += [(e.kind, e.path) for e in w.read(100)]
        # one write of the path: no temp name, and no second write from a close after the
        # rename (each counted as an overwrite: 3 per restore before)
        assert events == [("write", "a/photo.jpg")], events
        assert (tmp_path / "a" / "photo.jpg").read_bytes() == b"restored"
    finally:
        w.close()


def test_a_path_written_twice_in_one_batch_is_one_overwrite(tmp_path):
    from types import SimpleNamespace

    from mirrord.config.model import SourceConfig
    from mirrord.daemon_alarm import AlarmWatch
    from mirrord.journal import Outcome
    from tests.fakes import Clock

    src = SourceConfig("up", tmp_path, ("t",), alarm_deletes=10)
    j = Journal(tmp_path / "j.db", {"up": ("t",)})
    try:
        j.enqueue([Change("up", "a.jpg", "put")])
        j.ack([Outcome(op, "put", size=1) for op in j.claim("t", 10, now=1e12)])
        d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                            journal=j, metrics=None, next_heartbeat=9e9,
                            pipeline=SimpleNamespace(journal_failed=print))
        w = AlarmWatch(d, clock=Clock())
        w.observe(src, [Change("up", "a.jpg", "put"), Change("up", "a.jpg", "put")])
        assert w.alarms["up"].count() == 1
    finally:
        j.close()
