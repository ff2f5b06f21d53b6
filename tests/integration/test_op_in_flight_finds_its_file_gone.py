"""An op that sends what stands at its path (put, attr, mkdir) and finds it gone keeps
nothing when the file was renamed: on the real Journal, Shipper and LocalTarget with
keep_deleted on, the race forced by hand.

Found by tests/e2e/test_rename_fallback_keeps_nothing.py (`[three]`, 1 run in 5): `chmod
x; mv x y`. The chmod's row was claimed before the rename was read; the rename then fell
back to a delete of x (carrying y: keeper.lives_on keeps nothing when y holds the same
bytes) on the same row, while the in-flight chmod op looked at x, found nothing and sent
a plain delete of x, which kept x as 'deleted' though its bytes lived on at y. Such an op
now waits once (ship_rules.not_yet): its path's removal is read meanwhile, or was
read while it ran, and that row carries where the bytes went.
"""

from __future__ import annotations

import os

import pytest

from mirrord.journal import Change
from tests.exactness import differences, source_snapshot, target_snapshot
from tests.integration.test_move_then_directory_at_old_name import S, T, site  # noqa: F401
from tests.integration.test_shipper_tree_race import _drain


def kept(target) -> list[tuple[str, str]]:
    return [(k.path, k.why) for k in target.trash_list()]


@pytest.mark.parametrize("kind", ["attr", "put"])
@pytest.mark.parametrize("read", ["while it ran", "after it ran"])
def test_an_op_in_flight_whose_file_is_renamed_keeps_nothing(site, kind, read):  # noqa: F811
    src, j, shipper, target = site
    os.chmod(src / "f", 0o600)
    if kind == "put":
        (src / "f").write_bytes(b"a file called f, rewritten")
    j.enqueue([Change(S, "f", kind)])
    [op] = j.claim(T, 100)
    os.rename(src / "f", src / "g")
    if read == "while it ran":
        j.enqueue_move(S, "f", "g", is_dir=False)    # the row is in flight: a fallback
        j.ack(shipper.run_ops(target, [op]))
    else:
        j.ack(shipper.run_ops(target, [op]))
        j.enqueue_move(S, "f", "g", is_dir=False)
    _drain(j, shipper, target)
    assert differences(source_snapshot(src), target_snapshot(target)) == {}
    if kind == "attr":
        assert kept(target) == [], "f kept as deleted though its bytes live on at g"
    else:   # the bytes the target held at f are nowhere at the source: kept, once
        assert kept(target) == [("f", "deleted")]


def test_an_op_whose_file_is_gone_for_good_deletes_it_on_its_next_try(site):  # noqa: F811
    """No event ever comes (it was lost: an overflow's rescan would queue it): the op's
    second try sends the delete, and the bytes are kept as a user's delete is."""
    src, j, shipper, target = site
    j.enqueue([Change(S, "f", "attr")])
    (src / "f").unlink()
    [op] = j.claim(T, 100)
    [first] = shipper.run_ops(target, [op])
    assert first.busy and target.read("f") is not None
    j.ack([first])
    j.clock.now += 5
    _drain(j, shipper, target)
    assert target.read("f") is None
    assert kept(target) == [("f", "deleted")]


def test_a_file_renamed_while_its_put_is_sent_keeps_nothing(site, monkeypatch):  # noqa: F811
    """The put of t reaches the target, then t is renamed to g before the put is checked
    (ship_rules.unchanged: changed while sent, so not recorded as shipped) and before its
    ack: the rename is kept as a move (the row was in flight), which finds nothing
    recorded at t and sends g whole; its source-end delete of t then found the bytes
    the put left at t and kept them as 'deleted' (test_alarm_rename_over's
    '.f01.jpg.tmp', once in a full run). It carries g now: nothing is kept."""
    src, j, shipper, target = site
    (src / "t").write_bytes(b"written to a temp name, then renamed into place")
    j.enqueue([Change(S, "t", "put")])
    [op] = j.claim(T, 100)
    real = target.sync

    def sync_then_rename(items):
        results = real(items)
        os.rename(src / "t", src / "g")
        return results

    monkeypatch.setattr(target, "sync", sync_then_rename)
    outcomes = shipper.run_ops(target, [op])
    monkeypatch.setattr(target, "sync", real)
    assert [o.busy for o in outcomes] == [True]
    assert j.enqueue_move(S, "t", "g", is_dir=False) == []      # kept as a move
    j.ack(outcomes)
    _drain(j, shipper, target)
    assert differences(source_snapshot(src), target_snapshot(target)) == {}
    assert kept(target) == [], "t kept as deleted though its bytes live on at g"
