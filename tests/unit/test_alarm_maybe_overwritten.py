"""The mass-change alarm's one read per batch (Journal.maybe_overwritten): a write it leaves
out must be one Journal.overwrites answers False for, whatever the journal holds. Else a
rewrite of a held file would go uncounted (ransomware rewriting files in place).

Random journal stories (puts, deletes, file and directory renames, tree removals, held
deletes, ops claimed, acked, failed or landed on one target and not the other) and named
shapes, each checked over every name of a small tree: overwrites(p) implies p is in the
batch's answer. And the batch count itself is the same as with every write asked.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mirrord.alarm_batch import count_batch
from mirrord.daemon_alarm_resend import Resends
from mirrord.journal import Change, Journal, Outcome
from mirrord.journal.held_files import _NAMED_CHUNK
from tests.fakes import Clock

S, T, T2 = "up", "t", "t2"
LATER = 1e12   # claim "now": past every backoff
NAMES = ["f", "g", "d", "e", "d/f", "d/g", "e/f", "d/a", "d/a/f", "e/a/f"]
FILES = [n for n in NAMES if n not in ("d", "e", "d/a")]


@pytest.fixture
def j(tmp_path: Path) -> Journal:
    jr = Journal(tmp_path / "journal.db", {S: (T, T2)}, clock=Clock())
    yield jr
    jr.close()


def _step(j: Journal, rng: random.Random) -> None:
    """One thing that happens to the tree or on a target."""
    what = rng.choice(["put", "put", "put", "delete", "rmtree", "mvfile", "mvdir", "mkdir",
                       "claim", "claim", "ack", "fail", "landed", "hold"])
    target = rng.choice((T, T2))
    if what in ("put", "delete"):
        j.enqueue([Change(S, rng.choice(FILES), what)])
    elif what == "rmtree":
        j.enqueue([Change(S, rng.choice(("d", "e", "d/a")), "delete", tree=True)])
    elif what == "mkdir":
        j.enqueue([Change(S, rng.choice(("d", "e", "d/a")), "mkdir")])
    elif what == "mvfile":
        a, b = rng.sample(FILES, 2)
        j.enqueue_move(S, a, b, is_dir=False)
    elif what == "mvdir":
        a, b = rng.sample(("d", "e", "d/a", "e/a"), 2)
        if not b.startswith(a + "/"):
            j.enqueue_move(S, a, b, is_dir=True)
    elif what == "hold":
        j.hold_deletes(S, reason="test")
    else:
        ops = j.claim(target, rng.randint(1, 4), now=LATER, directories=False)
        if what == "claim" or not ops:
            return
        j.ack([Outcome(op, op.kind, is_dir=op.is_dir, size=1) if what == "ack"
               else Outcome(op, error="boom", landed=what == "landed") for op in ops])


def _assert_no_overwrite_left_out(j: Journal) -> None:
    maybe = j.maybe_overwritten(S, FILES)
    for path in FILES:
        if j.overwrites(S, path):
            assert path in maybe, path


@pytest.mark.parametrize("seed", range(60))
def test_a_write_left_out_is_never_an_overwrite(j, seed):
    rng = random.Random(seed)
    for _ in range(rng.randint(5, 40)):
        _step(j, rng)
        _assert_no_overwrite_left_out(j)


@pytest.mark.parametrize("seed", range(20))
def test_the_batch_counts_what_asking_every_write_counts(j, seed, monkeypatch):
    rng = random.Random(1000 + seed)
    for _ in range(rng.randint(5, 40)):
        _step(j, rng)
    batch = [Change(S, p, rng.choice(("put", "put", "delete"))) for p in rng.sample(FILES, 5)]
    counted = count_batch(j, _resends(j), S, batch)
    monkeypatch.setattr(Journal, "maybe_overwritten", lambda self, source, paths: set(paths))
    assert count_batch(j, _resends(j), S, batch) == counted


def _resends(j: Journal) -> Resends:
    return Resends(lambda source, path: j.files_removed_with(source, path),
                   lambda source, path: j.rows_at_or_below(source, path), Clock())


def _ship(j: Journal, *paths: str) -> None:
    dirs = sorted({p.rsplit("/", 1)[0] for p in paths if "/" in p})
    j.enqueue([Change(S, d, "mkdir") for d in dirs] + [Change(S, p, "put") for p in paths])
    for target in (T, T2):
        ops = j.claim(target, 1000, now=LATER, directories=False)
        j.ack([Outcome(op, op.kind, is_dir=op.is_dir, size=1) for op in ops])


def test_a_new_file_is_left_out_and_a_shipped_one_is_asked(j):
    _ship(j, "f")
    assert j.maybe_overwritten(S, ["f", "new"]) == {"f"}


def test_a_put_in_flight_on_one_target_is_asked(j):
    j.enqueue([Change(S, "f", "put")])
    j.claim(T, 10, now=LATER, directories=False)
    assert j.overwrites(S, "f") and j.maybe_overwritten(S, ["f"]) == {"f"}


def test_a_file_renamed_onto_the_name_is_asked(j):
    _ship(j, "a")
    j.enqueue_move(S, "a", "b", is_dir=False)
    assert j.overwrites(S, "b") and j.maybe_overwritten(S, ["b"]) == {"b"}


def test_below_a_directory_renamed_every_write_is_asked(j):
    """`mv d e` queued: e/f has no row of its own, its version is d/f's (old_names)."""
    _ship(j, "d/f")
    j.enqueue_move(S, "d", "e", is_dir=True)
    assert j.overwrites(S, "e/f")
    assert j.maybe_overwritten(S, ["e/f", "x"]) == {"e/f", "x"}


def test_a_source_without_targets_asks_nothing(j):
    assert j.maybe_overwritten("other", ["f"]) == set()


def test_more_paths_than_one_statement_takes(j):
    held = [f"h{i:04d}" for i in range(0, 3 * _NAMED_CHUNK, 97)]
    _ship(j, *held)
    paths = [f"h{i:04d}" for i in range(3 * _NAMED_CHUNK)]
    assert j.maybe_overwritten(S, paths) == set(held)
