"""Changes made while the daemon is down reach every target by the catch-up alone.

The real `mirrord run` against a local directory, S3 (SeaweedFS) and a mirror host
(rsync over sshd), with `[reconcile] at_start = no` and `every = off`: no reconcile pass
runs at any point, so whatever the catch-up at start (the source walked against the
`shipped` table) misses stays visible. The daemon is stopped cleanly (SIGTERM) or
killed (SIGKILL, also in the middle of a burst), the source is changed in every shape
a stopped daemon can miss (chmod or utime only, truncate, a file turned into a
directory and back, a directory renamed, removed, swapped with one from outside, a
hard link, empty directories made and removed), the daemon starts again, and every
target must then be exact (tests/exactness.py) and a reconcile dry run find nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import Env, live_only_config, poll


@contextlib.contextmanager
def no_pass_env(tmp_path, seaweedfs, sshd, watcher: str | None = None) -> Iterator[Env]:
    """Env on the three real targets with no reconcile pass at any point (live_only_config
    with `at_start = no`), the daemon stopped and the targets closed after; `watcher`:
    [source] watcher (None: the default)."""
    cfg = live_only_config(tmp_path, seaweedfs, sshd, watcher=watcher)
    cfg.write_text(cfg.read_text() + "at_start = no\n")   # the [reconcile] section is last
    e = Env(tmp_path, cfg)
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    with no_pass_env(tmp_path, seaweedfs, sshd) as e:
        yield e


def catchups(env: Env) -> int:
    return env.log_text().count("catch-up done") if env.log.exists() else 0


def start(env: Env) -> None:
    """Start the daemon and wait for its catch-up walk to finish."""
    before = catchups(env)
    env.daemon.start()
    poll(lambda: catchups(env) > before, timeout=120, what="the catch-up at start")


def write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def populate(src: Path) -> None:
    write(src / "keep.jpg", b"k" * 100)
    write(src / "chmod.jpg", b"c" * 100)
    write(src / "utime.jpg", b"u" * 100)
    write(src / "trunc.bin", b"t" * 10_000)
    write(src / "f2d", b"a file that becomes a directory")
    write(src / "d2f" / "inner.jpg", b"inside a directory that becomes a file")
    (src / "d2f" / "deeper").mkdir()
    write(src / "ren" / "r1.jpg", b"r1")
    write(src / "ren" / "sub" / "r2.jpg", b"r2")
    write(src / "gone" / "g.jpg", b"g")
    (src / "gone" / "empty").mkdir()
    write(src / "swap" / "a.jpg", b"first swap")
    write(src / "swap" / "sub" / "b.jpg", b"first swap b")
    (src / "swap" / "only-first").mkdir()
    write(src / "orig.jpg", b"o" * 64)
    (src / "empty-to-remove").mkdir()
    (src / "modes").mkdir()


def change_all(src: Path, outside: Path) -> None:
    os.chmod(src / "chmod.jpg", 0o600)
    os.utime(src / "utime.jpg", ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    os.truncate(src / "trunc.bin", 1234)
    (src / "f2d").unlink()
    write(src / "f2d" / "now.jpg", b"now a directory")
    shutil.rmtree(src / "d2f")
    write(src / "d2f", b"now a file")
    os.rename(src / "ren", src / "ren2")
    shutil.rmtree(src / "gone")
    os.rename(src / "swap", outside / "old-swap")
    write(outside / "new-swap" / "a.jpg", b"second swap, other bytes")
    write(outside / "new-swap" / "sub" / "c.jpg", b"second swap c")
    (outside / "new-swap" / "only-second").mkdir()
    os.rename(outside / "new-swap", src / "swap")
    os.link(src / "orig.jpg", src / "hard.jpg")
    (src / "empty-to-remove").rmdir()
    (src / "empty-new").mkdir()
    os.chmod(src / "modes", 0o700)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_changes_while_stopped_reach_every_target(env, tmp_path, sig):
    populate(env.src)
    start(env)
    env.assert_exact(by="the catch-up")
    env.daemon.kill(sig)
    outside = tmp_path / "outside"
    outside.mkdir()
    change_all(env.src, outside)
    start(env)
    env.assert_exact(by="the catch-up")


def test_sigkill_mid_burst_then_changes_while_down(env, tmp_path):
    """Killed while a burst is being shipped (rows claimed, some sent, none acked), the
    source changed again while it is down, then a second kill during the catch-up's own
    shipping: the next start still makes every target exact."""
    populate(env.src)
    start(env)
    env.assert_exact(by="the catch-up")
    burst = env.src / "burst"
    burst.mkdir()
    for i in range(400):
        write(burst / f"f{i:04d}.bin", os.urandom(1024))
    env.daemon.kill(signal.SIGKILL)
    outside = tmp_path / "outside"
    outside.mkdir()
    change_all(env.src, outside)
    for i in range(0, 400, 3):
        (burst / f"f{i:04d}.bin").unlink()
    for i in range(1, 400, 3):
        os.chmod(burst / f"f{i:04d}.bin", 0o600)
    env.daemon.start()                        # killed again while the catch-up ships
    env.daemon.kill(signal.SIGKILL)
    start(env)
    env.assert_exact(by="the catch-up")


def test_two_quick_restarts(env, tmp_path):
    populate(env.src)
    start(env)
    env.assert_exact(by="the catch-up")
    env.daemon.kill(signal.SIGTERM)
    outside = tmp_path / "outside"
    outside.mkdir()
    change_all(env.src, outside)
    env.daemon.start()
    env.daemon.kill(signal.SIGTERM)
    env.daemon.start()
    env.daemon.kill(signal.SIGKILL)
    start(env)
    env.assert_exact(by="the catch-up")


@pytest.mark.parametrize("second_kill", ["soon-after-start", "flip-sent-unrecorded", "drained"])
def test_a_directory_flipped_to_a_file_and_back_across_two_kills(env, tmp_path, second_kill):
    """A directory flipped to a file and back across two kills. The second kill once
    landed where a run in a loop never put it: it is pinned to three points now, as soon
    as the daemon runs (wherever that is: the random one), once the file `flip` reached
    every target with nothing recorded (held at the daemon's fault point "shipped",
    mirrord.faults), and once everything was shipped."""
    faults = tmp_path / "faults"
    faults.mkdir()
    env.daemon.env["MIRRORD_FAULT_DIR"] = str(faults)
    write(env.src / "flip" / "x.jpg", b"x")
    start(env)
    env.assert_exact(by="the catch-up")
    env.daemon.kill(signal.SIGKILL)
    shutil.rmtree(env.src / "flip")
    write(env.src / "flip", b"file now")
    if second_kill == "flip-sent-unrecorded":
        (faults / "shipped").write_text("* flip\n")
    env.daemon.start()
    if second_kill == "flip-sent-unrecorded":
        def held() -> bool:
            reached = faults / "shipped.reached"
            lines = reached.read_text().splitlines() if reached.exists() else []
            return all(f"{name} flip" in lines for name in env.targets)
        poll(held, timeout=60, what="the file flip sent to every target, held")
    elif second_kill == "drained":
        poll(lambda: catchups(env) >= 2, timeout=120, what="the second run's catch-up")
        poll(env.drained, timeout=90, what="the second run's work shipped")
    env.daemon.kill(signal.SIGKILL)
    (faults / "shipped").unlink(missing_ok=True)
    (env.src / "flip").unlink()
    write(env.src / "flip" / "y.jpg", b"y")
    start(env)
    env.assert_exact(by="the catch-up")


def test_special_files_and_names_around_the_slash_while_stopped(env, tmp_path):
    """A directory replaced by a symlink (never followed, never mirrored), a file by a
    FIFO, names that sort around '/' (`d`, `d-x`, `d.x`, `d/`) swapped between file and
    directory, and a directory renamed over an empty one, all while the daemon is down."""
    outside = tmp_path / "outside"
    write(outside / "secret.jpg", b"never mirrored")
    write(env.src / "linked" / "in.jpg", b"in a directory that becomes a symlink")
    write(env.src / "fifo.jpg", b"a file that becomes a FIFO")
    write(env.src / "d" / "x.jpg", b"d/x")
    write(env.src / "d-x", b"d-x file")
    (env.src / "d.x").mkdir()
    write(env.src / "over" / "o.jpg", b"renamed over an empty directory")
    (env.src / "target-empty").mkdir()
    start(env)
    env.assert_exact(by="the catch-up")
    env.daemon.kill(signal.SIGKILL)
    shutil.rmtree(env.src / "linked")
    os.symlink(outside, env.src / "linked")
    (env.src / "fifo.jpg").unlink()
    os.mkfifo(env.src / "fifo.jpg")
    shutil.rmtree(env.src / "d")
    write(env.src / "d", b"d is a file now")
    (env.src / "d-x").unlink()
    write(env.src / "d-x" / "y.jpg", b"d-x is a directory now")
    (env.src / "d.x").rmdir()
    write(env.src / "d.x", b"d.x is a file now")
    os.rename(env.src / "over", env.src / "target-empty")
    start(env)
    env.assert_exact(by="the catch-up")
    assert env.targets["local"].read("linked/secret.jpg") is None


def test_many_names_that_change_type_while_stopped(env):
    """120 files made directories (a file below each) and 120 directories made files, while
    the daemon is down: every target exact by the catch-up. On S3, SeaweedFS lost a put
    below `X/` sent beside the delete of the file X: acknowledged, then missing from every
    listing (2 in 400 such pairs sent together; the `d-x` of the test above, in a CI run).
    Each name's own request and those below it no longer go side by side there
    (mirrord.journal.key_overlaps; the rule is pinned by
    tests/unit/test_journal_inflight_paths.py: a server's race is not something a test
    can make happen at will, and this shape passed 3 of 3 runs before the rule too)."""
    names = [f"n{i:03}" for i in range(120)]
    for name in names:
        write(env.src / "f2d" / name, b"a file that becomes a directory")
        write(env.src / "d2f" / name / "y.jpg", b"inside a directory that becomes a file")
    start(env)
    env.assert_exact(by="the catch-up")
    env.daemon.stop()
    for name in names:
        (env.src / "f2d" / name).unlink()
        write(env.src / "f2d" / name / "y.jpg", b"a directory now")
        shutil.rmtree(env.src / "d2f" / name)
        write(env.src / "d2f" / name, b"a file now")
    start(env)
    env.assert_exact(by="the catch-up")
