"""Catch-up compares what the live stream ships — size, mtime and mode — and can be
restricted to one subtree (a directory that cannot be watched, checked every few seconds)
without proposing anything outside it. Real source tree, real journal, memory target."""

from __future__ import annotations

import os

import pytest

from tests.integration.test_catchup import Env


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.close()


def kinds(env: Env, **kw) -> set[tuple[str, str]]:
    return {(kind, path) for _t, kind, path, _tree in env.proposals(**kw)}


def test_a_mode_only_change_is_an_attr_change(env):
    env.files({"f": b"body", "g": b"other"})
    env.apply()
    os.chmod(env.root / "f", 0o600)
    assert kinds(env) == {("attr", "f")}


def test_an_mtime_change_is_a_put(env):
    env.files({"f": b"body"})
    env.apply()
    st = os.stat(env.root / "f")
    os.utime(env.root / "f", ns=(st.st_atime_ns, st.st_mtime_ns - 1))
    assert kinds(env) == {("put", "f")}


def test_a_directory_mode_change_is_a_mkdir(env):
    env.files({"d/x": b"1"})
    env.apply()
    os.chmod(env.root / "d", 0o2750)
    assert kinds(env) == {("mkdir", "d")}


def test_after_the_repair_nothing_is_proposed(env):
    env.files({"f": b"body", "d/x": b"1"})
    env.apply()
    os.chmod(env.root / "f", 0o600)
    os.chmod(env.root / "d", 0o700)
    env.apply()
    assert kinds(env) == set()
    assert env.targets["t"].read("f") == b"body"


def test_no_mode_is_compared_for_a_target_that_does_not_keep_it(env):
    env.files({"f": b"body"})
    env.apply()
    os.chmod(env.root / "f", 0o600)
    assert kinds(env, modes={"t": False}) == set()


def test_a_mode_never_recorded_is_sent_once_where_the_target_keeps_modes(env):
    env.files({"f": b"body"})
    env.apply()
    env.journal.db.execute("UPDATE shipped SET mode = NULL")   # as a schema-1 row
    assert kinds(env, modes={"t": True}) == {("attr", "f")}
    assert kinds(env) == set()          # not told: only recorded modes are compared


# ------------------------------------------------------------------ subtree


def test_a_subtree_catch_up_proposes_only_inside_the_subtree(env):
    env.files({"a/x": b"1", "a/s/y": b"2", "ab": b"3", "b/z": b"4"})
    env.apply()
    env.files({"a/new": b"n", "b/new": b"n", "top": b"n"})    # changes inside and outside
    os.unlink(env.root / "a" / "x")
    os.unlink(env.root / "b" / "z")
    os.chmod(env.root / "a" / "s", 0o700)
    os.chmod(env.root / "ab", 0o600)
    got = env.proposals(subtree="a")
    assert got == {("t", "put", "a/new", False), ("t", "delete", "a/x", False),
                   ("t", "mkdir", "a/s", False)}


def test_a_subtree_catch_up_of_an_emptied_directory_deletes_below_it_only(env):
    env.files({"a/x": b"1", "a/s/y": b"2", "keep": b"3"})
    env.apply()
    os.unlink(env.root / "a" / "x")
    os.unlink(env.root / "a" / "s" / "y")
    os.rmdir(env.root / "a" / "s")
    res, calls = env.catch_up(subtree="a")
    got = {(c.kind, c.path, c.tree) for batch in calls for c in batch}
    assert got == {("delete", "a/x", False), ("delete", "a/s", True), ("delete", "a/s/y", False)}
    assert res.refused_deletes == 0


def test_a_subtree_that_is_gone_proposes_no_delete(env):
    env.files({"a/x": b"1"})
    env.apply()
    os.unlink(env.root / "a" / "x")
    os.rmdir(env.root / "a")
    res, calls = env.catch_up(subtree="a")
    assert calls == [] and res.refused_deletes == 1
    assert [u[0] for u in res.unreadable] == ["a"]


def test_a_subtree_catch_up_ships_through_the_journal(env):
    env.files({"a/x": b"1"})
    env.apply()
    env.files({"a/y": b"22"})
    env.apply(subtree="a")
    assert env.targets["t"].read("a/y") == b"22"
    assert kinds(env) == set()


def test_a_subtree_catch_up_reads_only_the_rows_below_it(env, monkeypatch):
    from mirrord import catchup, journal
    env.files({"a/x": b"1", "b/y": b"2"})
    env.apply()
    seen: list[bytes] = []
    real = journal.iter_shipped

    def spy(conn, target, source, prefix=b""):
        for row in real(conn, target, source, prefix):
            seen.append(row[0])
            yield row

    monkeypatch.setattr(catchup.journal, "iter_shipped", spy)
    env.catch_up(subtree="a")
    assert seen == [b"a/x"]
