"""An op cut short by a `kill -9`, the source changed above it while the daemon was down:
the next start undoes what the op left, with no reconcile pass at any point.

The real `mirrord run` on the three real targets with `[reconcile] at_start = no` and
`every = off` (test_stopped_changes' fixture), so only the daemon's own start-up repairs
run. The window is held open by the daemon's fault point "shipped" (mirrord.faults): the
target has done the op (a put that made its parent directories, a rename into a new
directory) and nothing of it is recorded, the moment a real crash hits by chance. The
daemon is killed there with two ops held on one target (the top new directory's mkdir
and the file's op: the rsync target has two workers), the new directories are removed
or renamed at the source (or only the file removed: the directory the source keeps must
stay), and the daemon starts again with one worker per target, so the rows run one by
one in the order they were queued: the top directory's own row first, which, re-run as
a delete, found its directory not empty yet and left it behind for good.

On a target with directories (local, host) the file's op is no longer handed out while
the top directory's row is in flight (mirrord.journal.barriers.InFlight: `rm d; mkdir d;
echo > d/z` lost z on the mirror): there the kill comes with the top directory's mkdir
done and unrecorded, and the file's op not started, which the test checks too.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_stopped_changes import env, start, write  # noqa: F401 (env: a fixture)
from tests.reliability.conftest import Env, poll

TARGETS = ["local", "host", "s3"]



@pytest.fixture
def faults(env, tmp_path) -> Iterator[Path]:
    """The daemon's fault directory (MIRRORD_FAULT_DIR)."""
    d = tmp_path / "faults"
    d.mkdir()
    env.daemon.env["MIRRORD_FAULT_DIR"] = str(d)
    yield d
    (d / "shipped").unlink(missing_ok=True)   # a held worker let go: the stop can finish


def hold(faults: Path, target: str, *globs: str) -> None:
    """Hold `target`'s workers once they have done an op whose path matches a glob."""
    (faults / "shipped").write_text("".join(f"{target} {g}\n" for g in globs))


def held(faults: Path, target: str, path: str) -> bool:
    reached = faults / "shipped.reached"
    return reached.exists() and f"{target} {path}" in reached.read_text().splitlines()


def kill_held(env: Env, faults: Path, target: str, path: str) -> None:
    """Wait until `target` has done the op on `path` and is held there, then SIGKILL."""
    poll(lambda: held(faults, target, path), timeout=60, what=f"{path} done on {target}, held")
    env.daemon.kill(signal.SIGKILL)
    (faults / "shipped").unlink()


def kill_held_first(env: Env, faults: Path, target: str, top: str, below: str) -> None:
    """kill_held at the op on `below` (S3), or on a target with directories at the op on
    its new top directory `top`, which holds the op below back while it is in flight:
    checked, the op below was never done."""
    if target == "s3":
        kill_held(env, faults, target, below)
        return
    kill_held(env, faults, target, top)
    assert not held(faults, target, below), f"{below} done while {top}'s op was in flight"


def restart_one_worker(env: Env) -> None:
    text = env.cfg.read_text()
    assert "workers = 4\n" in text
    env.cfg.write_text(text.replace("workers = 4\n", "workers = 1\n", 1))
    start(env)


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("how", ["removed", "renamed", "file-only"])
def test_a_put_cut_short_below_new_directories(env, faults, name, how):
    write(env.src / "keep.jpg", b"kept")
    start(env)
    env.assert_exact(by="the catch-up")
    hold(faults, name, "up", "up/day/*")
    write(env.src / "up" / "day" / "photo.jpg", os.urandom(5000))
    kill_held_first(env, faults, name, "up", "up/day/photo.jpg")
    if how == "removed":
        shutil.rmtree(env.src / "up")
    elif how == "renamed":
        os.rename(env.src / "up", env.src / "up2")
    else:
        (env.src / "up" / "day" / "photo.jpg").unlink()
    restart_one_worker(env)
    env.assert_exact(by="the catch-up")


@pytest.mark.parametrize("name", TARGETS)
def test_a_rename_cut_short_into_a_new_directory(env, faults, name):
    write(env.src / "keep.jpg", b"kept")   # a source with no file left looks unmounted
    write(env.src / "m" / "x.jpg", os.urandom(3000))
    start(env)
    env.assert_exact(by="the catch-up")
    hold(faults, name, "n", "n/o/*")
    (env.src / "n" / "o").mkdir(parents=True)
    os.rename(env.src / "m" / "x.jpg", env.src / "n" / "o" / "x.jpg")
    kill_held_first(env, faults, name, "n", "n/o/x.jpg")
    shutil.rmtree(env.src / "n")
    restart_one_worker(env)
    env.assert_exact(by="the catch-up")
