"""LateReports (mirrord/watch/fanotify_late.py): what the fanotify watcher reports again
after a directory move whose new path was resolved late, and when it forgets.

A real tmp tree stands for the source as it is when the move is read; the reports
noted before are what the watcher said while resolving handles to today's paths.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.watch import fanotify_late
from mirrord.watch.events import FsEvent
from mirrord.watch.fanotify_late import LateReports


@pytest.fixture
def root(tmp_path) -> Path:
    (tmp_path / "Q" / "Y" / "deep").mkdir(parents=True)
    (tmp_path / "Q" / "Y" / "deep" / "g.jpg").write_bytes(b"g")
    (tmp_path / "Q" / "f.jpg").write_bytes(b"f")
    (tmp_path / "Q" / "skip.tmp").write_bytes(b"t")
    (tmp_path / "other").mkdir()
    return tmp_path


def late(root: Path) -> LateReports:
    return LateReports(str(root), lambda rel: rel.endswith(".tmp"))


def test_what_was_reported_below_the_new_path_is_reported_again_as_it_stands(root):
    lr = late(root)
    lr.note([FsEvent("rmtree", "Q/X", is_dir=True),      # gone: the churn's extra directory
             FsEvent("delete", "Q/old.jpg"),             # gone, a file
             FsEvent("write", "Q/f.jpg"),                # there: written again
             FsEvent("mkdir", "Q/Y", is_dir=True),       # there: with what is inside
             FsEvent("write", "Q/Y/deep/g.jpg"),         # inside Q/Y: listed with it, once
             FsEvent("move", "Q/B", src="Q/A", is_dir=True),   # both ends are paths below Q
             FsEvent("write", "other/h.jpg"),            # not below Q
             FsEvent("mkdir", "Q", is_dir=True)])        # Q itself: named by its parent
    out = lr.after_move("Q")
    assert out == [FsEvent("rmtree", "Q/A", is_dir=True),
                   FsEvent("rmtree", "Q/B", is_dir=True),
                   FsEvent("rmtree", "Q/X", is_dir=True),
                   FsEvent("mkdir", "Q/Y", is_dir=True),
                   FsEvent("mkdir", "Q/Y/deep", is_dir=True),
                   FsEvent("write", "Q/Y/deep/g.jpg"),
                   FsEvent("write", "Q/f.jpg"),
                   FsEvent("delete", "Q/old.jpg")]


def test_a_name_something_left_has_its_tree_removed_before_what_stands_there_now(root):
    """The move carried the target's copy of what left a name to the new path: a mkdir or
    a write over it keeps what the source no longer has, so the tree goes first (the
    hypothesis test's swap then grandparent renamed: a/a/s/a kept s/f)."""
    lr = late(root)
    lr.note([FsEvent("rescan", "Q/Y", is_dir=True),     # a directory left, another stands
             FsEvent("mkdir", "Q/Y", is_dir=True),
             FsEvent("rmtree", "Q/f.jpg", is_dir=True)])   # a directory left, a file stands
    assert lr.after_move("Q") == [FsEvent("rmtree", "Q/Y", is_dir=True),
                                  FsEvent("mkdir", "Q/Y", is_dir=True),
                                  FsEvent("mkdir", "Q/Y/deep", is_dir=True),
                                  FsEvent("write", "Q/Y/deep/g.jpg"),
                                  FsEvent("rmtree", "Q/f.jpg", is_dir=True),
                                  FsEvent("write", "Q/f.jpg")]
    lr.close(None)
    lr.note([FsEvent("move", "other", src="Q/Y", is_dir=True)])    # the old end of a move
    assert lr.after_move("Q")[:2] == [FsEvent("rmtree", "Q/Y", is_dir=True),
                                      FsEvent("mkdir", "Q/Y", is_dir=True)]


def test_what_left_below_a_listed_directory_is_not_skipped(root):
    """A listing sends what stands and removes nothing: "rm -r P/Y/X; chmod P/Y; mv P Q"
    read late lost the rmtree of Q/Y/X as "listed with Q/Y"; only below a directory whose
    tree was removed first is it covered."""
    lr = late(root)
    lr.note([FsEvent("rmtree", "Q/Y/X", is_dir=True), FsEvent("attr", "Q/Y", is_dir=True),
             FsEvent("write", "Q/Y/deep/g.jpg")])
    assert lr.after_move("Q") == [FsEvent("mkdir", "Q/Y", is_dir=True),
                                  FsEvent("mkdir", "Q/Y/deep", is_dir=True),
                                  FsEvent("write", "Q/Y/deep/g.jpg"),
                                  FsEvent("rmtree", "Q/Y/X", is_dir=True)]
    lr.note([FsEvent("rmtree", "Q/Y", is_dir=True)])     # now Q/Y itself left: covers all
    assert lr.after_move("Q") == [FsEvent("rmtree", "Q/Y", is_dir=True),
                                  FsEvent("mkdir", "Q/Y", is_dir=True),
                                  FsEvent("mkdir", "Q/Y/deep", is_dir=True),
                                  FsEvent("write", "Q/Y/deep/g.jpg")]


def test_a_name_reported_once_as_a_directory_stays_one():
    lr = LateReports("/nonexistent-root", lambda _r: False)
    lr.note([FsEvent("rmtree", "Q/X", is_dir=True)])
    lr.note([FsEvent("attr", "Q/X")])            # a later report without is_dir
    assert lr.after_move("Q") == [FsEvent("rmtree", "Q/X", is_dir=True)]


def test_nothing_noted_below_gives_nothing(root):
    lr = late(root)
    lr.note([FsEvent("write", "Qx/f.jpg"), FsEvent("overflow")])   # a sibling sharing a prefix
    assert lr.after_move("Q") == []


def test_close_forgets_generations_up_to_the_cut_and_keeps_later_ones():
    lr = LateReports("/nonexistent-root", lambda _r: False)
    lr.note([FsEvent("delete", "Q/before")])
    lr.lost_departure = lr.gen
    cut = lr.advance()          # a short read: everything queued before it is in hand
    lr.note([FsEvent("delete", "Q/during")])    # reported while handling that read
    lr.close(cut)
    assert set(lr.noted) == {"Q/during"} and lr.lost_departure is None
    lr.lost_departure = lr.gen
    lr.close(cut)               # the departure was read after the cut: kept
    assert lr.lost_departure == lr.gen
    lr.close(None)              # the queue found empty: everything settled
    assert lr.noted == {} and lr.lost_departure is None


def test_past_the_cap_the_window_is_forgotten_and_counted(monkeypatch):
    monkeypatch.setattr(fanotify_late, "MAX_NOTED", 3)
    lr = LateReports("/nonexistent-root", lambda _r: False)
    lr.note([FsEvent("delete", f"Q/{i}") for i in range(3)])
    lr.note([FsEvent("delete", "Q/last")])
    assert set(lr.noted) == {"Q/last"} and lr.overfull == 1


def test_a_directory_renamed_in_is_rescanned_only_with_the_sign_of_a_replaced_one():
    """renamed_in(): FAN_ATTRIB on the directory a rename replaced (replaced()) is the sign;
    a lost departure alone (a directory removed elsewhere) asks for nothing."""
    lr = LateReports("/nonexistent", lambda _r: False)
    assert lr.renamed_in("Q") == []                 # waits for the sign...
    assert lr.replaced() == [FsEvent("rescan", "Q", is_dir=True)]   # ...which comes after
    assert lr.renamed_in("R") == [] and lr.over == ["R"]
    lr.close(None)                                  # the queue was read past the rename:
    assert lr.over == [] and lr.replaced() == []    # R replaced nothing
    assert lr.renamed_in("S") == [FsEvent("rescan", "S", is_dir=True)]  # sign came first
    lr.close(None)
    assert lr.victim is None and lr.renamed_in("T") == []


def test_take_back_keeps_what_is_outside_and_the_outer_end_of_a_move_across(root):
    """Events below Q still in the read() call are taken out (after_move reports them after
    the move); a move across Q's edge leaves its outer end, as it stands on disk."""
    lr = late(root)
    out = [FsEvent("write", "Q/f.jpg"), FsEvent("write", "other/x"),
           FsEvent("move", "Q/Y/in.jpg", src="gone.jpg"),      # renamed in: src gone
           FsEvent("move", "other", src="Q/old", is_dir=True),  # renamed out: dst stands
           FsEvent("move", "Q/b", src="Q/a"), FsEvent("write", "Q2/f")]
    lr.note(out)
    assert lr.take_back("Q", out) is False          # all of it was in this read() call
    assert out == [FsEvent("write", "other/x"), FsEvent("delete", "gone.jpg"),
                   FsEvent("rescan", "other", is_dir=True), FsEvent("write", "Q2/f")]
    lr.batch.clear()                                # a later read() call
    lr.note([FsEvent("write", "Q/f.jpg")])
    lr.batch.clear()
    assert lr.take_back("Q", []) is True            # returned before: Q is compared again


def test_below_is_what_a_scan_of_every_noted_path_finds_through_notes_and_closes():
    """below() reads an index kept beside `noted` (a scan of every noted path once per
    directory rename was quadratic in a storm of exchanges): the same answer as the scan,
    through notes, moves, cuts and the cap."""
    import random

    rng = random.Random(7)
    lr = LateReports("/nonexistent-root", lambda _r: False)
    names = ["a", "a/b", "a/b/c", "ab", "a/bc", "x/y", "x", "a/b/c/d.jpg", "x/y/z.jpg"]

    def scanned(dst: str) -> list[str]:
        return sorted(p for p in lr.noted if p.startswith(dst + "/"))

    for step in range(400):
        roll = rng.random()
        if roll < 0.6:
            lr.note([FsEvent("write", rng.choice(names))])
        elif roll < 0.8:
            lr.note([FsEvent("move", rng.choice(names), src=rng.choice(names), is_dir=True)])
        elif roll < 0.95:
            lr.close(lr.advance() - rng.randint(0, 2))
        else:
            lr.close(None)
        for dst in ("a", "a/b", "x", "ab", "nothing"):
            assert lr.below(dst) == scanned(dst), (step, dst)


def test_what_a_translation_appends_is_noted_though_it_took_earlier_events_out():
    """A rename over a file written in the same read() call drops that write and appends
    its move: the length of `out` is unchanged, and the move must be noted all the same
    (its old end is what after_move reports again when its directory's move is read)."""
    lr = LateReports("/nonexistent-root", lambda _r: False)
    out = [FsEvent("write", "fa")]
    lr.note_since(out, 0)
    mark = lr.mark(out)
    lr.drop_replaced("fa", False, out)
    out.append(FsEvent("move", "fa", src="Q/g"))
    lr.note_since(out, mark)
    assert "Q/g" in lr.noted and lr.after_move("Q") == [FsEvent("delete", "Q/g")]
