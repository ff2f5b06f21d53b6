"""A catch-up made while a removal is in flight: the removal's worker looked at the source
before the source changed back, and its ack takes away shipped rows the comparison found.

Found in CI (fanotify, a directory exchanged three times with a symlink): the third
exchange's subtree check of the directory's name compared the source with `shipped`
while the tree removal of that name (the second exchange's: it had seen a symlink there)
was at a worker. The rows were still in `shipped`, so nothing was proposed; the removal's
ack then took them away and the targets kept an empty directory. Every catch-up (start,
overflow, subtree check, a directory moved on a target) compares the same way, so the
rule is in mirrord.catchup: a shipped row at or below a claimed tree op or delete is not
trusted (mirrord.journal.read.in_flight_removals). Real journal, real source walk, the
real shipper on a memory target.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.journal import Change
from tests.integration.test_catchup import Env

S = "up"


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path, targets=("t", "u"))
    yield e
    e.close()


def drain(env: Env) -> None:
    for name, target in env.targets.items():
        while ops := env.journal.claim(name, 1000, now=1e12):
            env.journal.ack(env.shipper.run_ops(target, ops))


def shipped(env: Env) -> None:
    """Everything the source holds is shipped to both targets (the live stream's work)."""
    env.journal.enqueue(change for batch in env.catch_up()[1] for change in batch)
    drain(env)
    assert env.proposals() == set()


def in_flight(env: Env, change: Change, *, seen_away: Path | None = None):
    """Record `change` for target t, claim it, and run it on the shipper with `seen_away`
    (a source path) moved aside meanwhile, so the worker sees what stood before the source
    changed back; returns the outcomes, not yet acked (the op is still claimed)."""
    env.journal.enqueue([change])
    ops = env.journal.claim("t", 1000, now=1e12)
    assert [op.path for op in ops] == [change.path]
    aside = None
    if seen_away is not None:
        aside = seen_away.with_name(seen_away.name + ".aside")
        os.rename(seen_away, aside)
    try:
        return env.shipper.run_ops(env.targets["t"], ops)
    finally:
        if aside is not None:
            os.rename(aside, seen_away)


def repaired(env: Env, outcomes, **kw) -> None:
    """Record the catch-up's proposals (`kw`: catch_up's), then the removal's ack (its
    rows below go from `shipped`), then ship everything: nothing is left to propose."""
    env.journal.enqueue(c for batch in env.catch_up(**kw)[1] for c in batch)
    env.journal.ack(outcomes)
    drain(env)
    assert env.proposals() == set()


def test_a_subtree_check_during_the_tree_removal_of_its_directory(env):
    """The CI shape: the subtree check of `d` while the tree removal of `d`, which found
    nothing there, is in flight. What `d` holds is proposed for t (and only for t), runs
    after the removal, and t ends up holding it."""
    env.files({"d/s/in.jpg": b"in the directory", "d/top.jpg": b"top", "other.jpg": b"x"})
    shipped(env)
    outcomes = in_flight(env, Change(S, "d", "delete", tree=True, targets=("t",)),
                         seen_away=env.root / "d")
    assert {(o.shipped_kind, o.error) for o in outcomes} == {("delete", None)}
    got = env.proposals(subtree="d")
    assert got == {("t", "mkdir", "d", False), ("t", "mkdir", "d/s", False),
                   ("t", "put", "d/s/in.jpg", False), ("t", "put", "d/top.jpg", False)}
    repaired(env, outcomes, subtree="d")
    for name in ("t", "u"):
        assert env.targets[name].read("d/s/in.jpg") == b"in the directory", name
        assert env.targets[name].read("d/top.jpg") == b"top", name


def test_a_full_catch_up_during_a_tree_removal_above(env):
    """An overflow's catch-up of the whole source while the removal of `a` is in flight:
    rows below `a` are proposed, rows beside it (`a2`, `a-b`: the same prefix, not below)
    and rows of the other target are trusted."""
    env.files({"a/b/c.jpg": b"c", "a2/x.jpg": b"x", "a-b/y.jpg": b"y"})
    shipped(env)
    outcomes = in_flight(env, Change(S, "a", "delete", tree=True, targets=("t",)),
                         seen_away=env.root / "a")
    assert env.proposals() == {("t", "mkdir", "a", False), ("t", "mkdir", "a/b", False),
                               ("t", "put", "a/b/c.jpg", False)}
    repaired(env, outcomes)
    assert env.targets["t"].read("a/b/c.jpg") == b"c"


def test_a_file_back_while_its_delete_is_in_flight(env):
    """A file's delete that found nothing, in flight while the very file came back (its
    event lost: an overflow): the catch-up proposes it again."""
    env.files({"f.jpg": b"kept", "g.jpg": b"g"})
    shipped(env)
    outcomes = in_flight(env, Change(S, "f.jpg", "delete", targets=("t",)),
                         seen_away=env.root / "f.jpg")
    assert env.proposals() == {("t", "put", "f.jpg", False)}
    repaired(env, outcomes)
    assert env.targets["t"].read("f.jpg") == b"kept"


def test_a_directory_re_made_as_a_tree_op_in_flight(env):
    """A tree mkdir (a directory that took another's place: Journal._rerun_in_flight) in
    flight counts as a removal: it clears what lies below it."""
    env.files({"d/x.jpg": b"x"})
    shipped(env)
    in_flight(env, Change(S, "d", "mkdir", tree=True, targets=("t",)))
    assert env.proposals() == {("t", "mkdir", "d", False), ("t", "put", "d/x.jpg", False)}


def test_what_is_not_a_removal_in_flight_is_trusted(env):
    """No extra sends: a put or an attr in flight, a removal recorded but not yet claimed
    (its worker will look at the source as it is then: a tree op finding a directory
    re-sends what lies below it), and a removal in flight for another source."""
    env.files({"a.jpg": b"a", "d/x.jpg": b"x", "e/y.jpg": b"y"})
    shipped(env)
    in_flight(env, Change(S, "a.jpg", "put", targets=("t",)))
    env.journal.enqueue([Change(S, "d", "delete", tree=True, targets=("t",))])
    env.journal.enqueue([Change(S, "e", "attr", targets=("u",))])
    assert env.journal.claim("u", 1000, now=1e12)
    assert env.proposals() == set()
    other = env.journal.db
    with env.journal.transaction():
        other.execute("UPDATE ops SET source = 'another', claimed = 1 WHERE path = ?", (b"d",))
    assert env.proposals() == set()


def test_a_reconcile_pass_during_a_tree_removal(env, tmp_path):
    """The reconcile engine compares a target listing, not `shipped`, but the listing
    still holds what a removal in flight is about to take: the same rule. The pass
    proposes what the source holds below the removal (missing), nothing elsewhere, and
    once the removal is acked and the repairs run, a second pass finds nothing."""
    from mirrord.config import Config, MirrordSettings, ReconcileConfig
    from mirrord.reconcile import reconcile_pass

    env.files({"d/s/in.jpg": b"in", "e.jpg": b"e"})
    shipped(env)
    cfg = Config(path=tmp_path / "mirrord.ini", mirrord=MirrordSettings(state_dir=tmp_path),
                 sources=(env.source,), targets={}, reconcile=ReconcileConfig(),
                 failover=None)
    outcomes = in_flight(env, Change(S, "d", "delete", tree=True, targets=("t",)),
                         seen_away=env.root / "d")
    env.targets["t"].files.update({"d/s/in.jpg": env.targets["u"].files["d/s/in.jpg"]})
    proposed: list[Change] = []
    res = reconcile_pass(cfg, env.targets["t"], env.source, emit=proposed.extend,
                         db_path=env.db)
    assert {(c.kind, c.path) for c in proposed} == {("put", "d/s/in.jpg")}
    assert res.missing == 1
    env.journal.enqueue(proposed)
    env.journal.ack(outcomes)
    drain(env)
    assert env.targets["t"].read("d/s/in.jpg") == b"in"
    again: list[Change] = []
    assert reconcile_pass(cfg, env.targets["t"], env.source, emit=again.extend,
                          db_path=env.db).missing == 0
    assert again == []
