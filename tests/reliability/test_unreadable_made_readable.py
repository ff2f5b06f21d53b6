"""A directory the daemon could not search, made readable again: what failed below it
ships live, on every target, without a reconcile and without waiting out the 10 minutes
(PERMANENT_RETRY) an "unreadable at the source" failure waits.

The daemon runs without root's DAC override (NO_DAC), so mode 000 is unreadable to it
for real; this test's process is root and writes through the locked directories, so a
change below them has an event the daemon cannot act on. The kernel reports the chmod
back of a directory on the directory alone (IN_ATTRIB): nothing names the files below
it, whose rows waited 600 s while status said degraded (a review, helper-153). Shapes:
a file below its locked parent, a file two levels below a locked grandparent, a file
locked itself (its own event: live before too), and the source root locked. fanotify
is not a shape here: it needs CAP_DAC_READ_SEARCH, with which mode 000 reads.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability.conftest import NO_DAC, Env, PrefixedMirrord, live_only_config, poll

# the files and the directory whose lock stops each of them
LOCKED = {"parent/a.txt": "parent", "grand/child/b.txt": "grand", "own.txt": "own.txt"}


def _unreadable_reported(env: Env) -> bool:
    targets = env.daemon.status()["targets"].values()
    return all(t["failing"] >= len(LOCKED) and "unreadable" in (t["last_error"] or "")
               for t in targets)   # failed, not only pending: the test is not vacuous


def test_what_failed_below_a_directory_made_readable_again_ships_live(tmp_path, seaweedfs, sshd):
    cfg = live_only_config(tmp_path, seaweedfs, sshd, watcher="inotify")
    cfg.write_text(cfg.read_text() + "at_start = no\n")   # the [reconcile] section is last
    env = Env(tmp_path, cfg)
    try:
        env.daemon = PrefixedMirrord(env.cfg, env.log, NO_DAC)
        src = env.src
        for d in ("parent", "grand/child"):
            (src / d).mkdir(parents=True)
        (src / "own.txt").write_text("readable")
        (src / "beside.txt").write_text("readable")
        env.daemon.start()
        env.assert_exact(by="the catch-up")        # directories made and watched
        for locked in set(LOCKED.values()):
            os.chmod(src / locked, 0)
        for rel in LOCKED:                            # root writes through mode 000
            if rel != "own.txt":
                (src / rel).write_text(f"{rel}: written while locked")
        os.chmod(src / "own.txt", 0o644)              # a write of a locked file: root's
        (src / "own.txt").write_text("own.txt: written, then locked")
        os.chmod(src / "own.txt", 0)
        (src / "beside.txt").write_text("the rest goes on")
        poll(lambda: _unreadable_reported(env), timeout=60,
             what="every locked file pending as unreadable on every target")
        for locked in set(LOCKED.values()):
            os.chmod(src / locked, 0o644 if locked == "own.txt" else 0o755)
        # well inside the 600 s a failure "unreadable at the source" waits for
        env.assert_exact(timeout=60)
        for name, target in env.targets.items():
            for rel in LOCKED:
                assert target.read(rel) == (src / rel).read_bytes(), (name, rel)
        assert env.daemon.stop() == 0
    finally:
        env.close()


def test_what_failed_below_the_source_root_made_readable_again_ships_live(
        tmp_path, seaweedfs, sshd):
    """The source root itself locked: every file failed is retried once it is readable."""
    cfg = live_only_config(tmp_path, seaweedfs, sshd, watcher="inotify")
    cfg.write_text(cfg.read_text() + "at_start = no\n")
    env = Env(tmp_path, cfg)
    try:
        env.daemon = PrefixedMirrord(env.cfg, env.log, NO_DAC)
        src: Path = env.src
        (src / "d").mkdir()
        env.daemon.start()
        env.assert_exact(by="the catch-up")
        os.chmod(src, 0)
        (src / "top.txt").write_text("below the locked root")
        (src / "d" / "deep.txt").write_text("two levels below the locked root")

        def reported() -> bool:
            targets = env.daemon.status()["targets"].values()
            return all(t["failing"] >= 2 and "unreadable" in (t["last_error"] or "")
                       for t in targets)
        poll(reported, timeout=60, what="both files pending as unreadable on every target")
        os.chmod(src, 0o755)
        env.assert_exact(timeout=60)
        assert env.daemon.stop() == 0
    finally:
        os.chmod(env.src, 0o755)
        env.close()
