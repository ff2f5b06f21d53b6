"""The config changed between two runs: the catch-up alone makes every target exact.

The real `mirrord run` on three real targets with no reconcile pass at all
(`[reconcile] every = off`, `at_start = no`, the fixture of test_stopped_changes): an
exclude pattern added (what it now excludes is neither sent nor deleted any more: a
target's copy stays, as reconcile leaves it, since it never lists excluded paths) or
removed (what it excluded arrives), a target added to the source (it gets everything), the source root
moved to another path under the same name (nothing is sent twice, the changes made
meanwhile are). Changes are made while the daemon is down too.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from mirrord import config as config_mod
from mirrord import targets as target_registry
from tests.e2e.test_stopped_changes import env, start, write  # noqa: F401 (env: a fixture)
from tests.exactness import wait_exact
from tests.reliability.conftest import poll


EXCLUDE_LINE = "exclude = *.tmp, *.part, .*.swp, *~"


def _excludes(env):
    return config_mod.load(env.cfg).source("uploads").excluded


def _edit(env, old: str, new: str) -> None:
    text = env.cfg.read_text()
    assert old in text, old
    env.cfg.write_text(text.replace(old, new))


def _tree(src) -> None:
    write(src / "a.jpg", b"a")
    write(src / "thumb" / "t.jpg", b"thumbnail")
    write(src / "deep" / "thumb" / "t2.jpg", b"thumbnail 2")
    write(src / "deep" / "keep.jpg", b"kept")
    write(src / "x.bak", b"a backup")


def _exact_outside_excludes(env, excludes) -> None:
    """Every target equals the source on every path the excludes leave in (on both
    sides: what they exclude is not the mirror's business)."""
    poll(env.drained, timeout=90, what="the backlog drained")
    for target in env.targets.values():
        wait_exact(env.src, _Filtered(target, excludes), timeout=90, excluded=excludes)


class _Filtered:
    """A target seen without the paths `excludes` leaves out (tests/exactness reads it)."""

    def __init__(self, target, excludes):
        self.target, self.excludes = target, excludes
        self.name, self.features = target.name, target.features

    def list(self, prefix: str = ""):
        return (e for e in self.target.list(prefix)
                if not self.excludes(e.path, is_dir=e.is_dir))

    def stat(self, path):
        return self.target.stat(path)

    def read(self, path):
        return self.target.read(path)


def test_an_exclude_added_then_removed(env):
    _tree(env.src)
    start(env)
    env.assert_exact(by="the catch-up", excludes=_excludes(env))
    env.daemon.kill(signal.SIGTERM)
    _edit(env, EXCLUDE_LINE, EXCLUDE_LINE + ", thumb/, *.bak")
    write(env.src / "thumb" / "t3.jpg", b"written while down, excluded now")
    write(env.src / "thumb" / "t.jpg", b"changed while down, excluded now")
    start(env)
    _exact_outside_excludes(env, _excludes(env))
    local = env.targets["local"]
    assert local.read("thumb/t.jpg") == b"thumbnail"      # neither re-sent nor deleted
    assert local.read("thumb/t3.jpg") is None
    catchup = env.daemon.status()["sources"]["uploads"]["catchup"]
    assert "delete" not in catchup["proposed"], catchup
    env.daemon.kill(signal.SIGKILL)
    _edit(env, EXCLUDE_LINE + ", thumb/, *.bak", EXCLUDE_LINE)
    start(env)
    env.assert_exact(by="the catch-up", excludes=_excludes(env))


def test_a_target_added(env):
    _edit(env, "targets = local, s3, host", "targets = local, s3")
    _tree(env.src)
    start(env)
    env.assert_exact(by="the catch-up", names=("local", "s3"))
    env.daemon.kill(signal.SIGKILL)
    write(env.src / "while-down.jpg", b"down")
    os.chmod(env.src / "a.jpg", 0o600)
    _edit(env, "targets = local, s3", "targets = local, s3, host")
    start(env)
    env.assert_exact(by="the catch-up")


def test_the_source_root_moved(env, tmp_path):
    _tree(env.src)
    start(env)
    env.assert_exact(by="the catch-up")
    env.daemon.kill(signal.SIGTERM)
    moved = tmp_path / "moved-src"
    os.rename(env.src, moved)
    _edit(env, f"path = {env.src}\n", f"path = {moved}\n")
    env.src = moved
    write(moved / "after-move.jpg", b"new")
    (moved / "a.jpg").unlink()
    start(env)
    env.assert_exact(by="the catch-up")
    assert "msg=retrying" not in env.log_text()


def test_a_backlog_queued_before_an_exclude_was_added_is_not_sent(env, sshd):
    """Rows queued for the mirror host while it was down, the daemon killed, `thumb/`
    excluded, the host back: the rows of thumb/ are dropped, not sent."""
    _tree(env.src)
    start(env)
    env.assert_exact(by="the catch-up", excludes=_excludes(env))
    sshd.stop()
    try:
        write(env.src / "thumb" / "queued.jpg", b"queued while the host was down")
        write(env.src / "queued-too.jpg", b"not excluded")
        poll(lambda: env.daemon.status()["targets"]["host"]["pending"] >= 2,
             what="the host's backlog")
        env.daemon.kill(signal.SIGKILL)
        _edit(env, EXCLUDE_LINE, EXCLUDE_LINE + ", thumb/")
    finally:
        sshd.start()
    start(env)
    _exact_outside_excludes(env, _excludes(env))
    host = env.targets["host"]
    assert host.read("queued-too.jpg") == b"not excluded"
    assert host.read("thumb/queued.jpg") is None


def _retarget(env, seaweedfs, sshd, what: str) -> str:
    """Point one target (or the source's `dest`) somewhere new in the config; returns the
    name of the target whose location changed ("" for `dest`: all of them)."""
    cfg = config_mod.load(env.cfg)
    if what == "local-path":
        _edit(env, "type = local\npath = ./mirror\n", "type = local\npath = ./mirror-moved\n")
        return "local"
    if what == "host-path":
        _edit(env, f"path = {cfg.targets['host'].rsync.path}\n", f"path = {sshd.new_root()}\n")
        return "host"
    if what == "s3-bucket":
        _edit(env, f"bucket = {cfg.targets['s3'].s3.bucket}\n", f"bucket = {seaweedfs.new_bucket()}\n")
        return "s3"
    if what == "s3-prefix":
        _edit(env, "prefix = up/\n", "prefix = moved/\n")
        return "s3"
    _edit(env, "[source:uploads]\n", "[source:uploads]\ndest = sub\n")
    return ""


@pytest.mark.parametrize("what", ["local-path", "host-path", "s3-bucket", "s3-prefix", "dest"])
def test_a_target_location_changed_is_filled(env, seaweedfs, sshd, what):
    """A target's location (or the source's `dest`) changed between two runs: the record
    of what was shipped belongs to the old place, so the new one gets every file, by the
    catch-up alone; nothing is deleted at the old place."""
    _tree(env.src)
    start(env)
    env.assert_exact(by="the catch-up")
    env.daemon.kill(signal.SIGTERM)
    name = _retarget(env, seaweedfs, sshd, what)
    write(env.src / "while-down.jpg", b"written while the daemon was down")
    (env.src / "x.bak").unlink()
    old = dict(env.targets)
    loaded = config_mod.load(env.cfg)
    moved = [name] if name else list(env.targets)
    for n in moved:
        if name:   # a new target object on the new place; the old one still reads the old
            env.targets[n] = target_registry.create(loaded.targets[n])
            env.targets[n].open()
    try:
        start(env)
        env.assert_exact(by="the catch-up", prefix="" if name else "sub")
        for n in moved:   # nothing deleted at the old place
            assert old[n].read("x.bak") == b"a backup", n
        log = env.log_text()
        said = [line for line in log.splitlines() if "target location changed" in line]
        assert sorted(re.search(r" target=(\S+)", line)[1] for line in said) == sorted(moved), said
        assert seaweedfs.secret_key not in log
    finally:
        for n in moved:
            if name:
                old[n].close()
