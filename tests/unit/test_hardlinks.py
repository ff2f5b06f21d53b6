"""LinkIndex (mirrord.hardlinks) on a real directory: what it learns, what `others` returns
and forgets, its bound; and the walk's hook that teaches it."""

from __future__ import annotations

import logging
import os

from mirrord.hardlinks import LinkIndex
from mirrord.treewalk import walk


def make(root, rel, data=b"x"):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_single_link_file_and_a_directory_are_not_learned(tmp_path):
    index = LinkIndex({"up": str(tmp_path)})
    make(tmp_path, "one.jpg")
    (tmp_path / "d").mkdir()
    index.learn("up", "one.jpg", os.lstat(tmp_path / "one.jpg"))
    index.learn("up", "d", os.lstat(tmp_path / "d"))
    assert len(index) == 0
    assert index.others("up", "one.jpg") == [] and index.others("up", "gone.jpg") == []


def test_others_are_the_same_inode_now_and_the_rest_forgotten(tmp_path):
    index = LinkIndex({"up": str(tmp_path)})
    a = make(tmp_path, "a/one.jpg")
    (tmp_path / "b").mkdir()
    os.link(a, tmp_path / "b" / "two.jpg")
    os.link(a, tmp_path / "three.jpg")
    index.learn("up", "b/two.jpg", os.lstat(tmp_path / "b" / "two.jpg"))
    assert index.others("up", "a/one.jpg") == [("up", "b/two.jpg")]       # learns a/one.jpg too
    assert index.others("up", "b/two.jpg") == [("up", "a/one.jpg")]
    assert index.others("up", "three.jpg") == [("up", "a/one.jpg"), ("up", "b/two.jpg")]
    assert len(index) == 3
    os.unlink(tmp_path / "b" / "two.jpg")
    make(tmp_path, "b/two.jpg", b"another file")              # the name reused
    assert index.others("up", "a/one.jpg") == [("up", "three.jpg")]
    assert len(index) == 2
    os.unlink(tmp_path / "three.jpg")                          # a/one.jpg alone again
    assert index.others("up", "a/one.jpg") == []


def test_the_bound_stops_learning_with_one_warning(tmp_path, caplog):
    index = LinkIndex({"up": str(tmp_path)}, max_names=2)
    a = make(tmp_path, "a.jpg")
    for name in ("b.jpg", "c.jpg", "d.jpg"):
        os.link(a, tmp_path / name)
    with caplog.at_level(logging.WARNING, logger="mirrord.hardlinks"):
        for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
            index.learn("up", name, os.lstat(tmp_path / name))
    assert len(index) == 2
    assert len([r for r in caplog.records if "hard-linked names" in r.getMessage()]) == 1


def test_the_walk_tells_of_multi_link_files_only(tmp_path):
    a = make(tmp_path, "x/a.jpg")
    os.link(a, tmp_path / "y.jpg")
    make(tmp_path, "single.jpg")
    seen = []
    entries = list(walk(str(tmp_path), links=lambda rel, st: seen.append((rel, st.st_nlink))))
    assert sorted(seen) == [("x/a.jpg", 2), ("y.jpg", 2)]
    assert {e.path for e in entries} == {"x", "x/a.jpg", "y.jpg", "single.jpg"}


def test_a_rename_moves_the_names_at_and_below_it(tmp_path):
    """A directory holding a linked name renamed: the name follows (without it, a write
    through the other name found the old path gone and forgot it)."""
    index = LinkIndex({"up": str(tmp_path)})
    a = make(tmp_path, "dir/a.jpg")
    os.link(a, tmp_path / "b.jpg")
    make(tmp_path, "dir-x/c.jpg")
    index.learn("up", "dir/a.jpg", os.lstat(a))
    index.learn("up", "b.jpg", os.lstat(tmp_path / "b.jpg"))
    os.rename(tmp_path / "dir", tmp_path / "moved")
    index.moved("up", "dir", "moved")
    index.moved("up", "dir-x", "elsewhere")                    # a sibling prefix: nothing of ours
    assert index.others("up", "b.jpg") == [("up", "moved/a.jpg")]
    os.rename(tmp_path / "b.jpg", tmp_path / "b2.jpg")   # a file's own rename
    index.moved("up", "b.jpg", "b2.jpg")
    assert index.others("up", "moved/a.jpg") == [("up", "b2.jpg")]
    assert len(index) == 2


def test_a_link_between_two_sources_and_a_rename_in_one(tmp_path):
    """Names across two sources' roots (a breaker: one index per source left the other
    source's name stale); a rename in one source moves only that source's names."""
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    x = make(a_root, "x.jpg")
    (b_root / "d").mkdir(parents=True)
    os.link(x, b_root / "d" / "y.jpg")
    index = LinkIndex({"a": str(a_root), "b": str(b_root)})
    index.learn("b", "d/y.jpg", os.lstat(b_root / "d" / "y.jpg"))
    assert index.others("a", "x.jpg") == [("b", "d/y.jpg")]
    os.rename(b_root / "d", b_root / "e")
    index.moved("a", "d", "e")                       # the other source's rename: not ours
    index.moved("b", "d", "e")
    assert index.others("a", "x.jpg") == [("b", "e/y.jpg")]
    assert index.others("b", "e/y.jpg") == [("a", "x.jpg")]
    assert LinkIndex({"a": str(a_root)}).others("z", "x.jpg") == []   # unknown source


def test_a_link_made_while_running_asks_for_one_walk_per_link_count(tmp_path):
    """`ln a b`: b's change finds 2 links and 1 name (a was never remembered): one walk
    is asked; asked again only when the link count changes (a name outside every root
    is never found: one walk, not one per write)."""
    index = LinkIndex({"up": str(tmp_path)})
    make(tmp_path, "a.jpg")
    os.link(tmp_path / "a.jpg", tmp_path / "b.jpg")
    assert index.others("up", "b.jpg") == [] and index.take_walk()
    assert not index.take_walk()                           # reset by taking it
    assert index.others("up", "b.jpg") == [] and not index.take_walk()   # same count
    os.link(tmp_path / "a.jpg", tmp_path / "c.jpg")
    assert index.others("up", "b.jpg") == [] and index.take_walk()       # 3 links now
    for name in ("a.jpg", "b.jpg", "c.jpg"):                # what the walk learns
        index.learn("up", name, os.lstat(tmp_path / name))
    assert sorted(n for _, n in index.others("up", "b.jpg")) == ["a.jpg", "c.jpg"]
    assert not index.take_walk()


def test_a_name_renamed_into_place_is_learnt_from_the_rename(tmp_path):
    index = LinkIndex({"up": str(tmp_path)})
    make(tmp_path, "a.jpg")
    os.link(tmp_path / "a.jpg", tmp_path / ".part")
    os.rename(tmp_path / ".part", tmp_path / "b.jpg")      # the create of .part read too late
    index.moved("up", ".part", "b.jpg")
    index.learn_path("up", "b.jpg")
    assert index.others("up", "a.jpg") == [("up", "b.jpg")]
    assert not index.take_walk()                            # every name is known


def test_link_walks_are_rate_limited_and_wait_for_the_backlog():
    """A dedup tool's 500 `ln` calls walked a 30,000-file tree 42 times, and walks made
    while the first sync was queued sent thousands of files twice (a breaker): one walk
    per LINK_WALK_EVERY seconds at most, and none while more than BACKLOG_LIMIT
    operations are queued or a catch-up is pending."""
    from types import SimpleNamespace

    from mirrord.daemon_events import LINK_WALK_EVERY, LinkWalks
    now = [1000.0]
    walks: list[str] = []
    backlog = [False]
    d = SimpleNamespace(
        catchups_pending=set(), roots=SimpleNamespace(lost={"gone": "x"}),
        cfg=SimpleNamespace(sources=[SimpleNamespace(name="up"), SimpleNamespace(name="gone")]),
        journal=SimpleNamespace(has_more_ops_than=lambda limit: backlog[0]),
        schedule_catch_up=lambda src, reason: walks.append(f"{src.name}:{reason}"))
    hook = LinkWalks(clock=lambda: now[0])
    hook(d)
    assert walks == []                       # nothing wanted
    hook.want("up")
    hook(d)
    assert walks == ["up:links"]             # at once; a lost root is not walked
    assert hook.wanted == set()
    for _ in range(50):                      # a storm of new links
        hook.want("up")
        now[0] += 0.1
        hook(d)
    assert walks == ["up:links"]
    now[0] += LINK_WALK_EVERY
    backlog[0] = True
    hook(d)
    assert walks == ["up:links"]             # the backlog first
    backlog[0] = False
    hook(d)
    assert walks == ["up:links", "up:links"]
