"""A target pointed at a place, then another, then back at the first (A, then B, then A):
the catch-up alone makes A exact again, deletes included.

The real `mirrord run` on the three real targets with `[reconcile] at_start = no` and
`every = off` (test_stopped_changes' fixture): no pass lists a target, so only the record
of what was shipped to A can tell what A holds that the source lost while mirrord pointed
at B. That record was forgotten when the location changed, so files deleted or renamed
away at the source meanwhile stayed at A for good (mirrord.locations keeps it now).
Changes are made while the daemon runs at B (the live stream ships them to B) and while
it is down before the return.
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from mirrord import config as config_mod
from mirrord import targets as target_registry
from tests.e2e.helpers import Mirrord, wait_converged
from tests.e2e.test_alarm_daemon import FILES, _batch_files, _config, poll, shipped_batch
from tests.e2e.test_restart_config_changes import _edit, _tree
from tests.e2e.test_stopped_changes import env, start, write  # noqa: F401 (env: a fixture)


def _to(cfg_path, sshd, name: str) -> tuple[str, str]:
    """(A's config line, B's) for target `name`: a place B beside the one it has."""
    cfg = config_mod.load(cfg_path)
    if name == "local":
        return "type = local\npath = ./mirror\n", "type = local\npath = ./mirror-b\n"
    if name == "s3":
        return "prefix = up/\n", "prefix = b/\n"
    return f"path = {cfg.targets['host'].rsync.path}\n", f"path = {sshd.new_root()}\n"


@pytest.mark.parametrize("name", ["local", "s3", "host"])
def test_a_return_to_a_place_used_before_deletes_what_went_meanwhile(env, sshd, name):  # noqa: F811
    _tree(env.src)
    write(env.src / "chmod.jpg", b"mode changes at B")
    write(env.src / "gone-while-down.jpg", b"deleted while the daemon is down, before A")
    start(env)
    env.assert_exact(by="the catch-up")
    a_line, b_line = _to(env.cfg, sshd, name)
    env.daemon.kill(signal.SIGTERM)
    _edit(env, a_line, b_line)
    at_a, env.targets[name] = env.targets[name], _reopen_at(env.cfg, name)
    try:
        start(env)
        env.assert_exact(by="the catch-up")      # B filled: every file sent there
        # while at B, by the live stream: a delete, renames (a file, a directory), a tree
        # removed, a change, a mode change, a new file
        (env.src / "a.jpg").unlink()
        os.rename(env.src / "deep" / "keep.jpg", env.src / "deep" / "renamed.jpg")
        os.rename(env.src / "thumb", env.src / "thumbs")
        shutil.rmtree(env.src / "deep" / "thumb")
        write(env.src / "x.bak", b"changed while at B, longer than before")
        os.chmod(env.src / "chmod.jpg", 0o600)
        write(env.src / "new-at-b.jpg", b"new while at B")
        env.assert_exact(by="the live stream")
        env.daemon.kill(signal.SIGTERM)
    finally:
        env.targets[name].close()
        env.targets[name] = at_a
    (env.src / "gone-while-down.jpg").unlink()
    _edit(env, b_line, a_line)
    start(env)
    env.assert_exact(by="the catch-up")          # A exact: deletes, renames and changes there
    assert at_a.read("a.jpg") is None and at_a.read("thumb/t.jpg") is None
    assert "used before" in env.log_text()


@pytest.fixture
def local_alarm(tmp_path):
    """test_alarm_daemon's daemon (one local target, 50 files, threshold 10, pause_on_alarm)
    with `[reconcile] at_start = no`, and the target object on place A."""
    cfg = _config(tmp_path, pause=True)
    cfg.write_text(cfg.read_text() + "\n[reconcile]\nat_start = no\nevery = off\n")
    daemon = Mirrord(cfg, tmp_path / "mirrord.log")
    at_a = _reopen_at(cfg, "local")
    yield tmp_path, cfg, daemon, at_a
    daemon.stop()
    at_a.close()


def _reopen_at(cfg, name: str):
    """A target object on the place `cfg` names now (an old one still reads the old)."""
    target = target_registry.create(config_mod.load(cfg).targets[name])
    target.open()
    return target


def _a_then_b(tmp, cfg, daemon, at_a) -> None:
    """50 files shipped to A, then the daemon run once at B (filled) and stopped."""
    src = tmp / "src"
    shipped_batch(src, daemon, at_a)
    b_and_back(cfg, daemon, src)


def b_and_back(cfg, daemon, src) -> None:
    """Point the local target at B (./mirror-b), run the daemon until B holds the source,
    stop it cleanly, and point the target back at A (./mirror)."""
    cfg.write_text(cfg.read_text().replace("path = ./mirror\n", "path = ./mirror-b\n"))
    at_b = _reopen_at(cfg, "local")
    try:
        daemon.start()
        wait_converged(src, at_b)
        assert daemon.stop() == 0
    finally:
        at_b.close()
    cfg.write_text(cfg.read_text().replace("path = ./mirror-b\n", "path = ./mirror\n"))


def test_the_deletes_at_a_place_returned_to_fire_the_alarm_and_wait(local_alarm):
    """What A's restored record lets the catch-up delete there counts for the mass-change
    alarm like any delete: held by pause_on_alarm until `mirrord resume-deletes`."""
    tmp, cfg, daemon, at_a = local_alarm
    _a_then_b(tmp, cfg, daemon, at_a)
    shutil.rmtree(tmp / "src" / "batch")
    daemon.start()

    def held():
        doc = daemon.status()["sources"]["uploads"]
        h = doc.get("deletes_held")
        return doc if h and h["waiting"] >= FILES else None

    assert poll("the return's deletes held", held, daemon)["alarm"] == "alarm"
    assert len(_batch_files(at_a)) == FILES      # nothing of it reached A
    daemon.cli("resume-deletes", "--source", "uploads")
    wait_converged(tmp / "src", at_a)


def test_no_delete_at_a_place_returned_to_while_the_source_root_is_empty(local_alarm):
    """An empty source root (an unmounted mount point looks empty): nothing A's restored
    record would delete is deleted. The root starts lost (mirrord.daemon_roots: empty
    while files shipped from it are recorded), so no catch-up proposes them at all."""
    tmp, cfg, daemon, at_a = local_alarm
    _a_then_b(tmp, cfg, daemon, at_a)
    for entry in (tmp / "src").iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    daemon.start()
    poll("the empty root held lost", lambda: "the source root is empty at start" in
         daemon.log.read_text(), daemon)
    assert len(_batch_files(at_a)) == FILES and at_a.read("keep.txt") == b"stays"


def test_a_place_filled_by_mirrord_reconcile_keeps_its_own_record(local_alarm):
    """A target moved to B and filled by `mirrord reconcile` before the daemon ran there:
    the command records what it sends against B, so the daemon's start finds B already
    current, and a return to A later gets only A's own record back. Before, the command
    recorded B's files under the record stored as A's; the daemon's start set it aside
    as A's, so the return to A took a file A never received for one it holds, and never
    sent it (the catch-up alone, at_start = no)."""
    tmp, cfg, daemon, at_a = local_alarm
    src = tmp / "src"
    (src / "batch").mkdir()
    (src / "batch" / "f00.jpg").write_bytes(b"shipped to A")
    daemon.start()
    wait_converged(src, at_a)
    assert daemon.stop() == 0
    (src / "batch" / "only-at-b.jpg").write_bytes(b"created while stopped, sent to B only")
    cfg.write_text(cfg.read_text().replace("path = ./mirror\n", "path = ./mirror-b\n"))
    at_b = _reopen_at(cfg, "local")
    try:
        res = daemon.cli("reconcile")              # fills B, daemon down
        assert "target location changed" in res.stderr   # the command's own check said so
        wait_converged(src, at_b)
        assert at_a.read("batch/only-at-b.jpg") is None
        before = daemon.log.read_text()
        daemon.start()
        wait_converged(src, at_b)
        assert daemon.stop() == 0
        # B's record is B's already: the daemon's start finds no change to set aside
        assert "target location changed" not in daemon.log.read_text()[len(before):]
    finally:
        at_b.close()
    cfg.write_text(cfg.read_text().replace("path = ./mirror-b\n", "path = ./mirror\n"))
    daemon.start()
    poll("A exact by the catch-up", lambda: at_a.read("batch/only-at-b.jpg") is not None, daemon)
    wait_converged(src, at_a)
