"""Each target's recorded bytes and their high-water mark (schema 6: `shipped_bytes`, kept
by triggers on `shipped`), and the percentage cap's base read from it
(mirrord.trash.retention.percent_base). The fault this prevents: the mark was sampled by
retention runs only (every 10 minutes in the daemon), so a tree mirrored and removed
between two of them was never in it, and a cap of what was left purged the files its
removal had just kept."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from mirrord import config as config_mod
from mirrord.journal import SCHEMA_VERSION, Change, Journal, Outcome, shipped_high_water
from mirrord.journal import shipped as shipped_mod
from mirrord.trash import retention
from tests.fakes import Clock

S, T, U = "up", "t", "u"


@pytest.fixture
def j(tmp_path: Path) -> Journal:
    jr = Journal(tmp_path / "state" / "journal.db", {S: (T, U)}, clock=Clock())
    yield jr
    jr.close()


def ship(j: Journal, path: str, size: int, *, target: str = T, is_dir: bool = False) -> None:
    j.enqueue([Change(S, path, "mkdir" if is_dir else "put", size=size, targets=(target,))])
    (op,) = [o for o in j.claim(target, 100, now=1e12) if o.path == path]
    j.ack([Outcome(op, "mkdir" if is_dir else "put", size=size, mtime_ns=1, mode=0o644,
                   is_dir=is_dir)])


def remove(j: Journal, path: str, *, tree: bool = False) -> None:
    j.enqueue([Change(S, path, "delete", tree=tree, targets=(T,))])
    (op,) = [o for o in j.claim(T, 100, now=1e12) if o.path == path]
    j.ack([Outcome(op, "delete", is_dir=tree)])


def totals(db: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    return {t: (b, h) for t, b, h in db.execute("SELECT target, bytes, high FROM shipped_bytes")}


def recount(db: sqlite3.Connection) -> dict[str, int]:
    """What the triggers must agree with: the sizes recorded, an UNSURE one as 0."""
    return {t: n for t, n in db.execute(
        "SELECT target, SUM(MAX(size, 0)) FROM shipped GROUP BY target")}


def test_a_tree_mirrored_and_removed_stays_in_the_high_water_mark(j):
    ship(j, "old.jpg", 1000)
    for i in range(10):
        ship(j, f"batch/{i}.jpg", 500)
    remove(j, "batch", tree=True)
    assert totals(j.db)[T] == (1000, 6000)
    assert shipped_high_water(j.db, T) == 6000


def test_a_file_replaced_is_counted_once_not_twice(j):
    """The record is an upsert: INSERT OR REPLACE would drop the old row without its DELETE
    trigger, and the bytes would count both bodies."""
    ship(j, "a.jpg", 100)
    ship(j, "a.jpg", 40)
    ship(j, "a.jpg", 70)
    assert totals(j.db)[T] == (70, 100)
    assert totals(j.db) == {T: (70, 100)}   # nothing counted on the target not written


def test_a_directory_moved_keeps_its_bytes_and_each_target_counts_apart(j):
    ship(j, "d", 0, is_dir=True)
    for i in range(3):
        ship(j, f"d/{i}", 10)
        ship(j, f"d/{i}", 7, target=U)
    j.enqueue_move(S, "d", "e", is_dir=True)
    ops = [o for o in j.claim(T, 100, now=1e12)]
    j.ack([Outcome(o, "move" if o.kind == "move" else "skip", is_dir=True) for o in ops])
    assert sorted(bytes(k) for k, *_ in j.db.execute(
        "SELECT key FROM shipped WHERE target = ?", (T,))) == [b"e/", b"e/0", b"e/1", b"e/2"]
    assert totals(j.db)[T] == (30, 30)
    assert totals(j.db)[U] == (21, 21)


def test_a_location_set_aside_and_restored_counts_what_the_record_says(j):
    for i in range(4):
        ship(j, f"f{i}", 25)
    with j.db:
        shipped_mod.set_aside(j.db, T, S, "loc-a")
    assert totals(j.db)[T] == (0, 100)
    with j.db:
        shipped_mod.restore_aside(j.db, T, S, "loc-a")
    assert totals(j.db)[T] == (100, 100) and recount(j.db)[T] == 100


def test_unsure_rows_count_nothing(j):
    ship(j, "a/b.jpg", 50)
    j.enqueue([Change(S, "a/b.jpg", "put", size=60, targets=(T,))])
    j.claim(T, 100, now=1e12)   # in flight when the location changes
    with j.db:
        shipped_mod.mark_in_flight_unsure(j.db, T, S)
    assert recount(j.db)[T] == 0
    assert totals(j.db)[T] == (0, 50)


def test_random_changes_keep_the_totals_equal_to_a_recount(j):
    rng = random.Random(7)
    names = [f"d{rng.randrange(3)}/f{i}" for i in range(30)]
    high = 0
    for _ in range(300):
        name = rng.choice(names)
        if rng.random() < 0.7:
            ship(j, name, rng.randrange(0, 1000), target=rng.choice((T, U)))
        else:
            remove(j, name.split("/")[0], tree=True) if rng.random() < 0.1 else remove(j, name)
        now = recount(j.db)
        high = max(high, now.get(T, 0))
        assert {t: b for t, (b, _h) in totals(j.db).items()} == \
            {t: now.get(t, 0) for t in totals(j.db)}
    assert totals(j.db)[T][1] >= high


def test_a_version_5_database_is_counted_at_migration(tmp_path):
    path = tmp_path / "state" / "journal.db"
    jr = Journal(path, {S: (T,)}, clock=Clock())
    ship(jr, "x", 300)
    ship(jr, "y", 200)
    jr.db.executescript("DROP TRIGGER shipped_bytes_insert; DROP TRIGGER shipped_bytes_update; "
                        "DROP TRIGGER shipped_bytes_delete; DROP TABLE shipped_bytes; "
                        "PRAGMA user_version = 5;")
    jr.close()
    ro = sqlite3.connect(path)
    assert shipped_high_water(ro, T) == 0   # schema 5 read as it is: no mark, no error
    ro.close()
    again = Journal(path, {S: (T,)}, clock=Clock())
    try:
        assert again.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert totals(again.db) == {T: (500, 500)}
        ship(again, "z", 100)
        assert totals(again.db) == {T: (600, 600)}
    finally:
        again.close()


def test_the_percentage_cap_is_of_the_high_water_mark(tmp_path):
    (tmp_path / "up").mkdir()
    (tmp_path / "m").mkdir()
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n"
                   f"[source:{S}]\npath = {tmp_path / 'up'}\ntargets = {T}\n"
                   f"[target:{T}]\ntype = local\npath = {tmp_path / 'm'}\n"
                   "keep_deleted = 7d\nkeep_deleted_max = 20%\n")
    cfg = config_mod.load(ini)
    jr = Journal(cfg.mirrord.journal_path, {S: (T,)}, clock=Clock())
    try:
        ship(jr, "keep.jpg", 1000)
        for i in range(8):
            ship(jr, f"tree/{i}", 1000)
        remove(jr, "tree", tree=True)
    finally:
        jr.close()
    assert retention.mirrored_bytes(cfg.mirrord.journal_path, cfg, T) == 1000
    assert retention.percent_base(cfg.mirrord.journal_path, cfg, T) == 9000
