"""A state_dir on a full file system at start: `mirrord run` and `mirrord reconcile` say
so in one line naming the path and `[mirrord] state_dir` (exit 2), never a bare errno.

Before: both printed only "mirrord: [Errno 28] No space left on device" and exited 1:
the lock file was made (an inode was free) but writing its pid failed outside the check
that names the key. Each shape runs on a tmpfs mounted for the test (tests run as root).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import MIRRORD


@pytest.fixture
def small_state(tmp_path):
    """(config, state_dir): state_dir a 1 MiB tmpfs, unmounted after the test."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "tmpfs", str(state)],
                   check=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"[mirrord]\nstate_dir = {state}\n[source:up]\npath = {tmp_path / 'src'}\n"
                   f"targets = t\n[target:t]\ntype = local\npath = {tmp_path / 'mirror'}\n")
    cfg.chmod(0o600)
    try:
        yield cfg, state
    finally:
        subprocess.run(["umount", str(state)], check=True)


def mirrord(cfg: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([MIRRORD, "-c", str(cfg), *argv], capture_output=True, text=True,
                          timeout=60)


def fill_blocks(state: Path) -> None:
    with open(state / "fill", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


def fill_inodes(state: Path) -> None:
    n = 0
    try:
        while True:
            (state / f"i{n}").touch()
            n += 1
    except OSError:
        pass


def says_state_dir(done: subprocess.CompletedProcess, state: Path, *words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mirrord: ") and "[mirrord] state_dir" in last, done.stderr
    assert str(state) in last and all(w in last for w in words), last
    assert "Errno" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [("run",), ("reconcile",)])   # --dry-run writes nothing there
@pytest.mark.parametrize("shape", ["no blocks", "no inodes"])
def test_a_full_state_dir_before_the_first_start(small_state, argv, shape):
    cfg, state = small_state
    (fill_blocks if shape == "no blocks" else fill_inodes)(state)
    says_state_dir(mirrord(cfg, *argv), state, "No space left on device")


@pytest.mark.parametrize("argv", [("run",), ("reconcile",)])
def test_a_full_state_dir_holding_the_locks_but_no_database(small_state, argv):
    cfg, state = small_state
    for name in ("daemon.lock", "reconcile.lock"):
        (state / name).write_text("1\n")   # a block each: the pid is written in place
    fill_blocks(state)
    says_state_dir(mirrord(cfg, *argv), state / "journal.db", "free disk space")


@pytest.mark.parametrize("argv", [("run",), ("reconcile",)])
def test_a_full_state_dir_holding_a_database(small_state, argv):
    cfg, state = small_state
    assert mirrord(cfg, "reconcile").returncode == 0
    (state / "daemon.lock").write_text("1\n")
    fill_blocks(state)
    says_state_dir(mirrord(cfg, *argv), state / "journal.db", "free disk space")
