"""What `mirrord status` and `mirrord resume-deletes` say is held: distinct paths, not journal
rows. A breaker's 21 held files on 3 targets read `63 deletes held`, next to `alarm: 23`."""

from __future__ import annotations

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
    from mirrord.trash.restore import TEMP_PREFIX
    from mirrord.watch.inotify import TreeWatcher

    src = SourceConfig("up", tmp_path, ("local",))
    assert src.excluded(f"{TEMP_PREFIX}0123") and src.excluded(f"a/b/{TEMP_PREFIX}x")
    assert not src.excluded("a/b/photo.jpg") and not src.excluded(f"{TEMP_PREFIX}d", is_dir=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "photo.jpg").write_bytes(b"damaged")
    w = TreeWatcher(str(tmp_path), src.excluded)
    try:
        w.start()
        tmp = Path(tmp_path / "a" / f"{TEMP_PREFIX}0123")
        tmp.write_bytes(b"restored")
        tmp.replace(tmp_path / "a" / "photo.jpg")
        events = []
        for _ in range(20):
            events += [(e.kind, e.path) for e in w.read(100)]
        assert ("write", "a/photo.jpg") in events
        assert not [e for e in events if TEMP_PREFIX in e[1]], events
    finally:
        w.close()
