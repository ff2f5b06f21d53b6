"""Features.keeps_parents_in_put (issue 17): the keeper asks no keep for a marked put's
parents on a target that keeps them in the put (rsync), still does on one that does not
(local), and mirrord.targets.rsync.inrun.Keeps sends each parent once, shallowest first,
before the items, with the stamp of the first item needing it. Memory targets; no service."""

from __future__ import annotations

from dataclasses import replace

from mirrord.errors import RetryableError
from mirrord.targets.model import SyncItem
from mirrord.targets.rsync.inrun import Keeps, run_errors
from mirrord.trash import keeper
from mirrord.trash.model import stamp_of
from tests.unit.test_keeper_by_condition import WHEN, STAMP, WithDirs

LATER = stamp_of(WHEN + 60)


class InPut(WithDirs):
    features = replace(WithDirs.features, keeps_parents_in_put=True)


def test_a_marked_put_on_a_target_keeping_parents_in_put_asks_nothing():
    t = InPut()
    items, errors = keeper.prepare(t, [SyncItem("d/e/f", "file", when=WHEN),
                                       SyncItem("x", "absent", when=WHEN),
                                       SyncItem("g/h", "dir", when=WHEN)])
    assert errors == [None, None, None] and items[0].keep_stamp == STAMP
    # only the items that are not plain puts: the delete, and the mkdir with its parent
    assert t.requests == [("g", STAMP, "dir"), ("x", STAMP, "absent"), ("g/h", STAMP, "dir")]


def test_without_the_flag_the_parents_are_still_asked():
    t = WithDirs()
    keeper.prepare(t, [SyncItem("d/e/f", "file", when=WHEN)])
    assert t.requests == [("d", STAMP, "dir"), ("d/e", STAMP, "dir")]


def test_keeps_of_a_run_orders_parents_first_and_sends_each_once():
    items = [SyncItem("a/b/c", "file", keep_stamp=STAMP), SyncItem("plain", "file"),
             SyncItem("a/b/d", "file", keep_stamp=LATER), SyncItem("a/x", "file", keep_stamp=LATER)]
    keeps = Keeps.of(items, [0, 1, 2, 3])
    assert keeps.requests == [("a", STAMP, "dir"), ("a/b", STAMP, "dir"), ("a/b/c", STAMP, "file"),
                              ("a/b/d", LATER, "file"), ("a/x", LATER, "file")]
    assert keeps.needs == {0: [0, 1, 2], 2: [0, 1, 3], 3: [0, 4]}   # the unmarked item needs none
    boom = RetryableError("x")
    assert keeps.item_errors([None, boom, None, None, None]) == {0: boom, 2: boom}


def test_a_failed_keep_fails_every_item_of_the_run():
    items = [SyncItem("a/b", "file", keep_stamp=STAMP), SyncItem("c", "file", keep_stamp=STAMP),
             SyncItem("plain", "file")]
    keeps = Keeps.of(items, [0, 1, 2])   # requests: a (dir), a/b, c
    stderr = b"1 E ln: Permission denied\0rsync: connection unexpectedly closed\n"
    got = run_errors(keeps, stderr, [0, 1, 2], "rsync:t(host)")
    assert "cannot keep 'a/b'" in str(got[0]) and type(got[0]).__name__ == "PermanentError"
    assert isinstance(got[1], RetryableError) and "keeping 'a/b' failed first" in str(got[1])
    assert got[2] is got[1]
    assert run_errors(keeps, b"rsync error: some other trouble (code 23)\n", [0, 1, 2], "w") is None
