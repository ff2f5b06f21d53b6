"""Catch-up's ctime bound (mirrord.watched_through): a file whose size, mtime and mode match
its shipped row is put again when its inode changed after the source's watched-through
bound, and only then. A real source walk against a real journal's `shipped` rows."""

from __future__ import annotations

import os
import time

from tests.integration.test_catchup import Env, env  # noqa: F401 - the fixture


def put_back_mtime(path, data: bytes) -> None:
    st = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_rewrite_that_keeps_size_and_mtime_is_put_only_past_the_bound(env: Env):
    env.files({"a.jpg": b"1111", "d/b.jpg": b"2222", "c.jpg": b"3333"})
    env.apply()
    bound = time.time_ns()
    time.sleep(0.02)    # past the coarse clock's tick: the rewrites' ctimes lie after it
    put_back_mtime(env.root / "a.jpg", b"AAAA")
    put_back_mtime(env.root / "d/b.jpg", b"BBBB")
    assert env.proposals() == set()                       # size, mtime and mode: shipped
    res, calls = env.catch_up(changed_after_ns=bound)
    got = {(c.kind, c.path) for batch in calls for c in batch}
    assert got == {("put", "a.jpg"), ("put", "d/b.jpg")} and res.by_ctime == 2
    # a bound after the rewrites: nothing (every ctime lies before it)
    assert env.proposals(changed_after_ns=time.time_ns()) == set()


def test_the_bound_never_turns_a_directory_or_a_new_file_into_anything_else(env: Env):
    env.files({"d/x.jpg": b"x"})
    env.apply()
    bound = time.time_ns()
    time.sleep(0.02)
    os.chmod(env.root / "d", 0o750)
    os.chmod(env.root / "d", 0o755)     # the directory's ctime moved; it is not re-made
    env.files({"new.jpg": b"n"})
    res, calls = env.catch_up(changed_after_ns=bound)
    got = {(c.kind, c.path) for batch in calls for c in batch}
    assert got == {("put", "new.jpg")} and res.by_ctime == 0


def test_a_file_renamed_over_with_the_old_size_and_mtime_is_put(env: Env):
    """`rsync -a` from a backup: a new inode renamed over the path, size and mtime as shipped."""
    env.files({"f.jpg": b"old!"})
    env.apply()
    bound = time.time_ns()
    time.sleep(0.02)
    tmp = env.root.parent / "tmp.jpg"
    tmp.write_bytes(b"new!")
    st = (env.root / "f.jpg").stat()
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(tmp, st.st_mode & 0o7777)
    os.rename(tmp, env.root / "f.jpg")
    assert env.proposals() == set()
    assert env.proposals(changed_after_ns=bound) == {("t", "put", "f.jpg", False)}
    env.apply(changed_after_ns=bound)
    assert env.targets["t"].files["f.jpg"][0] == b"new!"
