"""fanotify: events resolved after their directory was renamed are reported again after
the move (issue 18, the churn test's "one extra directory" on the local target).

fanotify names a directory by handle, turned into a path when the event is read: with
"rmdir P/X; mv P Q" done before the watcher reads, the rmdir reads as rmtree Q/X and
comes BEFORE the move P -> Q. Applied in that order the rmtree finds nothing, then the
move carries P/X to Q/X: the mirror keeps a directory the source lacks. Seen in the
churn test's traces hundreds of times per run; the journal hides it only while the
rmtree's row is still pending when the move is recorded (Journal.enqueue_move then
re-sends Q), and the rescan of Q the watcher asks for only while it runs after the move
was shipped. So the model here is the worst case the daemon can meet: every event's
rows shipped before the next event is recorded (no fallback), rescans doing nothing.
Each case starts from a settled tree, renames an unrelated directory first (reading
that rename clears the handle cache, so P's handle is looked up after P was renamed),
then does its operations with no read in between, real kernel, both orders fixed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

from mirrord.watch.events import FsEvent
from mirrord.watch.fanotify import FanotifyWatcher
from tests.fanotify_marks import fanotify_root
from tests.watch_model import apply, disk, read_until, settle


@pytest.fixture
def root(tmp_path) -> Path:
    return fanotify_root(tmp_path)


def shipped_one_by_one(model: set[str], events: list[FsEvent], root: Path) -> set[str]:
    """The target after `events`, each applied alone (its rows shipped before the next
    event is recorded, so no move falls back to a re-send), rescans doing nothing."""
    for ev in events:
        if ev.kind != "rescan":
            model = apply(model, [ev], root)
    return model


def _rmdir(r: Path) -> None:
    os.rmdir(r / "P" / "X")


def _rmtree_nested(r: Path) -> None:
    shutil.rmtree(r / "P" / "S" / "X")


def _new_file(r: Path) -> None:
    (r / "P" / "f.jpg").write_bytes(b"new")


def _new_dir_with_file(r: Path) -> None:
    (r / "P" / "Y").mkdir()
    (r / "P" / "Y" / "g.jpg").write_bytes(b"g")


def _rename_inside(r: Path) -> None:
    os.rename(r / "P" / "X", r / "P" / "B")


def _delete_file(r: Path) -> None:
    os.unlink(r / "P" / "S" / "old.jpg")


def _moved_out_and_made_again(r: Path) -> None:
    os.rename(r / "P" / "S" / "X", r.parent / "gone")    # left: P/S/X/Z/z.jpg went with it
    (r / "P" / "S" / "X").mkdir()
    (r / "P" / "S" / "X" / "g.jpg").write_bytes(b"g")


def _removed_below_a_changed_directory(r: Path) -> None:
    shutil.rmtree(r / "P" / "S" / "X")
    os.chmod(r / "P" / "S", 0o750)      # P/S is reported too (attr), and listed after the move


CASES: dict[str, Callable[[Path], None]] = {
    "rmdir then parent renamed (the extra directory)": _rmdir,
    "rmtree two levels below the renamed directory": _rmtree_nested,
    "file written then parent renamed": _new_file,
    "directory made and filled then parent renamed": _new_dir_with_file,
    "directory renamed inside then parent renamed": _rename_inside,
    "file deleted two levels below, then renamed": _delete_file,
    "directory moved out and made again, then parent renamed": _moved_out_and_made_again,
    "directory removed below one changed, then renamed": _removed_below_a_changed_directory,
}


@pytest.mark.parametrize("case", list(CASES))
def test_what_was_read_below_a_directory_renamed_since_holds_after_the_move(root, case):
    for d in ("P/X", "P/S/X/Z", "R"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "P/S/old.jpg").write_bytes(b"old")
    (root / "P/S/X/Z/z.jpg").write_bytes(b"z")
    w = FanotifyWatcher(str(root))
    try:
        assert w.start() == []
        settle(w, root)
        model = disk(root)
        os.rename(root / "R", root / "R2")      # its FAN_RENAME clears the handle cache
        CASES[case](root)
        os.rename(root / "P", root / "Q")
        events = settle(w, root)
    finally:
        w.close()
    assert any(e.kind == "move" and (e.src, e.path) == ("P", "Q") for e in events), events
    assert shipped_one_by_one(model, events, root) == disk(root), events


def test_a_short_read_closes_the_window_opened_before_it(root, monkeypatch):
    """A read that leaves room for another event found the queue empty: every rename queued
    before the lookups and reports made so far is in hand once that buffer is handled, so
    they are forgotten; those made while handling it are kept (a rename may be queued
    after the read and before them). Without this the window closes only when a read
    finds the queue empty, which on a busy file system may never happen. The buffer is
    one FAN_CREATE in directory D, packed in the kernel's layout (tests/unit/
    test_fanotify_records.py), with D's real handle so its lookup gives "D"."""
    from mirrord.watch import fanotify as F
    from mirrord.watch import fanotify_sys as S
    from tests.unit.test_fanotify_records import event, fid_record

    (root / "D").mkdir()
    (root / "D" / "f.jpg").write_bytes(b"f")
    w = FanotifyWatcher(str(root))
    try:
        w.start()
        w.paths.resolved["old"] = w.late.gen         # made before the short read
        w.late.note([FsEvent("delete", "old/x")])
        w.late.lost_departure = w.late.gen
        buf = event(S.FAN_CREATE | S.FAN_CLOSE_WRITE,
                    fid_record(S.FAN_EVENT_INFO_TYPE_DFID_NAME, S.name_to_handle(root / "D"),
                               b"f.jpg"))
        reads = [buf]
        seen: dict = {}

        def fake_read(fd, n):
            if reads:
                return reads.pop()
            seen.update(resolved=dict(w.paths.resolved), noted=dict(w.late.noted),
                        lost=w.late.lost_departure)
            raise BlockingIOError

        class Ready:
            def poll(self, _timeout):
                return [(w.fd, 1)]

        monkeypatch.setattr(w, "_poll", Ready())
        monkeypatch.setattr(F.os, "read", fake_read)
        out = w.read(0)
    finally:
        monkeypatch.undo()
        w.close()
    assert FsEvent("write", "D/f.jpg") in out
    assert set(seen["resolved"]) == {"D"} and set(seen["noted"]) == {"D/f.jpg"}
    assert seen["lost"] is None


@pytest.mark.parametrize("read_between", [True, False], ids=["read-then-renamed",
                                                             "renamed-before-read"])
def test_a_file_modified_without_close_is_written_under_its_directory_s_new_name(
        root, read_between):
    """truncate(2) by path (no close), then the directory renamed: the write falls due
    after the move and must name the new path. Named by the old one it shipped nothing
    (no file there) while the move carried the old bytes to the new name: the churn
    test's "content and mtime differ" below a renamed directory (seen once in 8 runs)."""
    (root / "D").mkdir()
    (root / "D" / "f.bin").write_bytes(b"12345")
    w = FanotifyWatcher(str(root), quiet=3600.0)     # due only when settle() forces it
    try:
        assert w.start() == []
        settle(w, root)
        os.truncate(root / "D" / "f.bin", 2)
        if read_between:
            read_until(w, lambda _evs: w.modified)
        os.rename(root / "D", root / "E")
        events = settle(w, root)
    finally:
        w.close()
    writes = [e.path for e in events if e.kind == "write"]
    assert "E/f.bin" in writes and "D/f.bin" not in writes, events
