"""A directory whose name ends in " (deleted)" is mirrored live like any other: the real
`mirrord run`, either watcher, a local directory, S3 and a mirror host.

d_path(), which the fanotify watcher reads a directory handle's path back through
(/proc/self/fd), appends " (deleted)" to an unlinked directory's path; the watcher took
every path ending so for a directory gone, and dropped each event below `Photos (deleted)`
without a word, status in_sync (a breaker). Made before the start, and made while running
and then looked up again after an unrelated directory rename cleared the path cache."""

from __future__ import annotations

import os

from tests.e2e.test_exact_stream import env, start, write  # noqa: F401 - env: the fixture


def test_a_directory_named_deleted_is_mirrored(env):
    src = env.src
    (src / "Photos (deleted)").mkdir()
    write(src / "Photos (deleted)" / "old.jpg", b"old")
    start(env)
    env.assert_exact(passes_allowed=True)
    write(src / "Photos (deleted)" / "new.jpg", b"new")
    os.chmod(src / "Photos (deleted)" / "old.jpg", 0o600)
    (src / "Photos (deleted)" / "sub (deleted)").mkdir()
    write(src / "Photos (deleted)" / "sub (deleted)" / "deep.jpg", b"deep")
    env.assert_exact(passes_allowed=True)
    (src / "x").mkdir()
    os.rename(src / "x", src / "y")                  # clears the watcher's path cache
    write(src / "Photos (deleted)" / "sub (deleted)" / "later.jpg", b"later")
    with open(src / "Photos (deleted)" / "old.jpg", "ab") as fh:
        fh.write(b" appended")
    env.assert_exact(passes_allowed=True)
    os.rename(src / "Photos (deleted)", src / "Photos")   # and the name given up
    env.assert_exact(passes_allowed=True)
