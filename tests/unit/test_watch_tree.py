"""The pure watch tree: paths derived from parents, renames as one re-parenting,
removal of exactly one subtree, no cycle whatever order the moves come in, and the
unwatched-directory retry state on a hand-driven clock."""

from __future__ import annotations

from mirrord.watch.tree import WatchTree
from mirrord.watch.unwatched import Unwatched


def build() -> tuple[WatchTree, dict[str, object]]:
    """root(1) / a(2) / b(3) / c(4), root / d(5)"""
    t = WatchTree()
    nodes = {"": t.set_root(1)}
    for wd, path in ((2, "a"), (3, "a/b"), (4, "a/b/c"), (5, "d")):
        parent, _, name = path.rpartition("/")
        nodes[path] = t.add(wd, name)
        assert t.attach(nodes[path], nodes[parent], name) is None
    return t, nodes


def test_paths_are_derived_from_parents():
    t, n = build()
    assert t.paths() == {"": 1, "a": 2, "a/b": 3, "a/b/c": 4, "d": 5}
    assert t.path(n["a/b/c"]) == "a/b/c" and t.lookup("a/b") is n["a/b"]
    assert t.lookup("a/x") is None and t.lookup("nope/deeper") is None


def test_a_rename_is_one_node_move_and_the_subtree_follows():
    t, n = build()
    t.attach(n["a"], n["d"], "moved")
    assert t.paths() == {"": 1, "d": 5, "d/moved": 2, "d/moved/b": 3, "d/moved/b/c": 4}
    assert n["a"].name == "moved"


def test_a_detached_node_has_no_path_nor_has_anything_below_it():
    t, n = build()
    t.detach(n["a"])
    assert t.path(n["a"]) is None and t.path(n["a/b/c"]) is None
    assert t.top(n["a/b/c"]) is n["a"]
    assert set(t.paths()) == {"", "d"}
    assert len(t) == 5                     # still known by wd: its events can be recognised


def test_attach_over_a_name_returns_the_node_that_stood_there():
    t, n = build()
    stale = t.attach(n["a/b"], n[""], "d")
    assert stale is n["d"] and t.path(n["d"]) is None
    assert t.paths() == {"": 1, "a": 2, "d": 3, "d/c": 4}


def test_attach_below_its_own_subtree_never_makes_a_cycle():
    t, n = build()
    t.attach(n["a"], n["a/b/c"], "loop")    # stale order of events: impossible on disk
    assert n["a"].parent is n["a/b/c"]
    assert t.top(n["a"]) is n["a/b"]        # the part in the way is set aside: no cycle,
    assert t.path(n["a"]) is None           # and no place until the kernel names one
    assert t.paths() == {"": 1, "d": 5}
    t.attach(n["d"], n["d"], "self")
    assert t.path(n["d"]) is None


def test_drop_forgets_exactly_one_subtree():
    t, n = build()
    assert sorted(t.drop(n["a/b"])) == [3, 4]
    assert t.paths() == {"": 1, "a": 2, "d": 5} and set(t.by_wd) == {1, 2, 5}


def test_forget_wd_leaves_orphans_detached():
    t, n = build()
    orphans = t.forget_wd(2)
    assert orphans == [n["a/b"]] and t.path(n["a/b/c"]) is None
    assert t.paths() == {"": 1, "d": 5}
    assert t.forget_wd(99) == []


def test_set_root_again_keeps_the_tree():
    t, _n = build()
    t.set_root(1)
    assert len(t.paths()) == 5


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def test_unwatched_retries_back_off_and_rescans_come_on_schedule(tmp_path):
    limit = tmp_path / "max_user_watches"
    limit.write_text("100\n")
    clock = Clock()
    u = Unwatched(clock, first=1.0, cap=4.0, rescan_every=5.0, limit_file=str(limit))
    assert u.add("x") is True and u.add("x") is False   # reported once; delay now 2 s
    assert u.due() == [] and u.next_deadline() == 101.0   # the next limit check
    clock.t = 102.0
    assert u.due() == ["x"]
    for _ in range(5):
        u.add("x")
    assert u.entries["x"][1] == 4.0                     # capped
    assert not u.rescan_due()
    clock.t = 105.0
    assert u.rescan_due() and not u.rescan_due()
    clock.t = 106.5
    limit.write_text("200\n")                           # raised: everything due at once
    assert u.due() == ["x"]
    u.discard("x")
    assert len(u) == 0 and u.next_deadline() is None and u.due() == []
