"""The alarm's notes of directories renamed and re-sent (mirrord.daemon_alarm_resend):
what a removal of the new name counts before the re-send lands. Pure logic: the journal's
answers are given by the test."""

from __future__ import annotations

import pytest

from mirrord.alarm_batch import count_batch
from mirrord.daemon_alarm_resend import RESEND_SETTLE, Resends


class World:
    """What the journal would answer: files held below a path, and paths with rows pending."""

    def __init__(self):
        self.held: dict[tuple[str, str], int] = {}
        self.busy: set[tuple[str, str]] = set()
        self.now = 100.0

    def resends(self) -> Resends:
        return Resends(lambda s, p: self.held.get((s, p), 0), lambda s, p: (s, p) in self.busy,
                       lambda: self.now)


@pytest.fixture
def w() -> World:
    return World()


def test_a_re_send_notes_what_the_new_name_holds_and_a_removal_takes_it(w):
    r = w.resends()
    w.held[("up", "b")] = 14           # a's files, as the journal shows them under b now
    r.renamed("up", "a", "b", resent=True)
    assert r.taken("up", "b") == 14
    assert r.taken("up", "b") == 0     # taken once


def test_a_kept_move_notes_nothing(w):
    r = w.resends()
    w.held[("up", "b")] = 14
    r.renamed("up", "a", "b", resent=False)
    assert r.taken("up", "b") == 0


@pytest.mark.parametrize("removed, counted", [("b", 5), ("", 0), ("x", 0), ("b/sub", 0),
                                              ("top", 0)])
def test_a_removal_takes_the_notes_at_or_below_it(w, removed, counted):
    r = w.resends()
    w.held[("up", "b")] = 5
    r.renamed("up", "a", "b", resent=True)
    assert r.taken("up", removed) == counted
    assert r.taken("up", "b") == 5 - counted


def test_notes_below_are_summed_and_other_sources_kept_apart(w):
    r = w.resends()
    w.held.update({("up", "d/x"): 3, ("up", "d/y"): 4, ("other", "d/x"): 9})
    r.renamed("up", "p", "d/x", resent=True)
    r.renamed("up", "q", "d/y", resent=True)
    r.renamed("other", "p", "d/x", resent=True)
    assert r.taken("up", "d-") == 0     # a name sorting between is not below d
    assert r.taken("up", "d") == 7
    assert r.taken("other", "d") == 9


def test_a_note_moves_with_the_directory_and_keeps_its_count(w):
    """b renamed on to c before its re-send landed: the journal shows less at c (b's rows
    gone), the note still says what the targets lost; below a renamed parent too."""
    r = w.resends()
    w.held[("up", "b")] = 14
    r.renamed("up", "a", "b", resent=True)
    r.renamed("up", "b", "c", resent=True)        # the journal shows 0 under c
    assert r.taken("up", "b") == 0
    assert r.taken("up", "c") == 14
    w.held[("up", "p/b")] = 6
    r.renamed("up", "a", "p/b", resent=True)
    r.renamed("up", "p", "q", resent=False)       # the parent kept as a move
    assert r.taken("up", "q") == 6


def test_a_note_goes_once_its_re_send_has_landed(w):
    r = w.resends()
    w.held[("up", "b")] = 14
    w.busy.add(("up", "b"))
    r.renamed("up", "a", "b", resent=True)
    w.now += RESEND_SETTLE + 1
    r.settle()
    assert r.taken("up", "b") == 14               # still pending: kept however old
    r.renamed("up", "a", "b", resent=True)
    w.busy.clear()
    w.now += 1
    r.settle()
    assert r.taken("up", "b") == 14               # nothing pending, but the walk may be early
    r.renamed("up", "a", "b", resent=True)
    w.now += RESEND_SETTLE
    r.settle()
    assert r.taken("up", "b") == 0
    assert r.notes == {}


def test_nothing_held_notes_nothing(w):
    r = w.resends()
    r.renamed("up", "a", "b", resent=True)
    assert r.notes == {}


def test_each_file_delete_counted_below_takes_one_off(w):
    """`rm -rf b`: each file's delete (counted 1) may come in a batch before b's own."""
    r = w.resends()
    w.held.update({("up", "b"): 3, ("up", "b/sub"): 2})
    r.renamed("up", "a", "b", resent=True)
    r.renamed("up", "s", "b/sub", resent=True)
    r.deleted("up", "b/sub/f")            # the nearest note above it
    r.deleted("up", "b/g")
    r.deleted("up", "elsewhere/g")
    assert r.notes["up"] == {"b": (2, w.now), "b/sub": (1, w.now)}
    for _ in range(5):
        r.deleted("up", "b/h")
    assert r.taken("up", "b") == 0 + 1


def test_what_is_renamed_out_from_below_a_note_leaves_it(w):
    """`mv site site.old` re-sent, then `mv site.old/* archive/; rmdir site.old`: nothing
    lost (the note counted all 12, a false alarm)."""
    r = w.resends()
    w.held.update({("up", "site.old"): 12, ("up", "archive/sub"): 4})
    r.renamed("up", "site", "site.old", resent=True)
    for i in range(8):
        r.renamed("up", f"site.old/f{i}", f"archive/f{i}", resent=False, is_dir=False)
    r.renamed("up", "site.old/sub", "archive/sub", resent=False)   # a directory of 4
    r.renamed("up", "site.old/g", "site.old/h", resent=False, is_dir=False)   # stays below
    assert r.taken("up", "site.old") == 0


def test_a_file_is_no_note_to_carry(w):
    r = w.resends()
    w.held[("up", "b")] = 3
    r.renamed("up", "a", "b", resent=True)
    r.renamed("up", "b", "c", resent=False, is_dir=False)   # a file at b's name? not b's note
    assert r.taken("up", "b") == 3


def test_a_directory_renamed_within_a_noted_one_adds_no_note(w):
    """`mv X A` and `mv A/sub A/sub2`, both re-sent: A's note holds sub's files already."""
    r = w.resends()
    w.held.update({("up", "A"): 12, ("up", "A/sub2"): 5})
    r.renamed("up", "X", "A", resent=True)
    r.renamed("up", "A/sub", "A/sub2", resent=True)
    assert r.taken("up", "A") == 12
    r.renamed("up", "X", "A", resent=True)
    w.held[("up", "A/in")] = 3
    r.renamed("up", "Y", "A/in", resent=True)                # from outside: files of its own
    assert r.taken("up", "A") == 12 + 3


def test_the_alarm_counts_a_note_once_with_deletes_in_the_same_batch(tmp_path):
    """`rm site.old/f0..f5; mv site.old /outside` read in one batch: the six deletes count
    one each, the removal the six the note still holds (they were taken off the note and
    off the journal's count both: 7 for 12)."""
    from types import SimpleNamespace

    from mirrord.config import SourceConfig
    from mirrord.daemon_alarm import AlarmWatch
    from mirrord.journal import Change

    src = SourceConfig("up", tmp_path, ("t",), alarm_deletes=100)
    journal = SimpleNamespace(files_removed_with=lambda s, p, target=None: 0,
                              overwrites=lambda s, p: False,
                              rows_at_or_below=lambda s, p: True)
    d = SimpleNamespace(cfg=SimpleNamespace(sources=(src,), source=lambda name: src),
                        journal=journal, metrics=None)
    watch = AlarmWatch(d, clock=lambda: 5.0, wall=lambda: 1234.0)
    watch.resends.held_below = lambda s, p: 12
    watch.renamed(src, "site", "site.old", is_dir=True, resent=True)
    batch = [Change("up", f"site.old/f{i}", "delete") for i in range(6)]
    batch.append(Change("up", "site.old", "delete", tree=True))
    assert count_batch(journal, watch.resends, "up", batch) == 12
