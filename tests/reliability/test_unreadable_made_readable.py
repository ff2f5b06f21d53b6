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
from collections.abc import Iterator

import pytest

from tests.reliability.conftest import NO_DAC, Env, PrefixedMirrord, live_only_config, poll

# the files and the directory whose lock stops each of them
LOCKED = {"parent/a.txt": "parent", "grand/child/b.txt": "grand", "own.txt": "own.txt"}


@pytest.fixture
def no_dac_env(tmp_path, seaweedfs, sshd) -> Iterator[Env]:
    """All three real targets, inotify, live only (no pass at start or on a schedule), the
    daemon without DAC override."""
    cfg = live_only_config(tmp_path, seaweedfs, sshd, watcher="inotify")
    cfg.write_text(cfg.read_text() + "at_start = no\n")   # the [reconcile] section is last
    e = Env(tmp_path, cfg)
    e.daemon = PrefixedMirrord(e.cfg, e.log, NO_DAC)
    try:
        yield e
    finally:
        os.chmod(e.src, 0o755)
        e.close()


def _unreadable_reported(env: Env, files: int) -> None:
    """Wait until `files` rows failed as unreadable on every target (failed, not only
    pending: the test is not vacuous)."""
    def reported() -> bool:
        return all(t["failing"] >= files and "unreadable" in (t["last_error"] or "")
                   for t in env.daemon.status()["targets"].values())
    poll(reported, timeout=60, what=f"{files} files failing as unreadable on every target")


def test_what_failed_below_a_directory_made_readable_again_ships_live(no_dac_env):
    env = no_dac_env
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
    _unreadable_reported(env, len(LOCKED))
    for locked in set(LOCKED.values()):
        os.chmod(src / locked, 0o644 if locked == "own.txt" else 0o755)
    # well inside the 600 s a failure "unreadable at the source" waits for
    env.assert_exact(timeout=60)
    for name, target in env.targets.items():
        for rel in LOCKED:
            assert target.read(rel) == (src / rel).read_bytes(), (name, rel)
    assert env.daemon.stop() == 0


def test_what_failed_below_the_source_root_made_readable_again_ships_live(no_dac_env):
    """The source root itself locked: every file failed is retried once it is readable."""
    env = no_dac_env
    src = env.src
    (src / "d").mkdir()
    env.daemon.start()
    env.assert_exact(by="the catch-up")
    os.chmod(src, 0)
    (src / "top.txt").write_text("below the locked root")
    (src / "d" / "deep.txt").write_text("two levels below the locked root")
    _unreadable_reported(env, 2)
    os.chmod(src, 0o755)
    env.assert_exact(timeout=60)
    assert env.daemon.stop() == 0
