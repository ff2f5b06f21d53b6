"""The app-config flip on tmp_path: atomic symlink swap, flag file, exact restore, plan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.config import FailoverConfig
from mirrord.failover import steps
from mirrord.failover.appconfig import RECORD, FlagFileSwitch, SymlinkSwitch
from mirrord.failover.result import DONE, FAILED, SKIPPED, UNCHANGED, Step


@pytest.fixture
def etc(tmp_path) -> Path:
    d = tmp_path / "etc"
    d.mkdir()
    (d / "readonly.php").write_text("ro")
    (d / "readwrite.php").write_text("rw")
    return d


def switch(etc: Path, tmp_path: Path) -> SymlinkSwitch:
    return SymlinkSwitch(etc / "active.php", etc / "readonly.php", etc / "readwrite.php",
                         tmp_path / "state")


def test_flip_and_back_restores_the_exact_bytes(etc, tmp_path):
    os.symlink(b"./readwrite.php", etc / "active.php")
    sw = switch(etc, tmp_path)
    assert sw.apply(True)[0] is True
    assert os.readlink(etc / "active.php") == str(etc / "readonly.php")
    assert (tmp_path / "state" / RECORD).exists()
    assert sw.apply(True)[0] is False                       # twice: unchanged, record kept
    assert sw.apply(False)[0] is True
    assert os.readlink(os.fsencode(etc / "active.php")) == b"./readwrite.php"
    assert not (tmp_path / "state" / RECORD).exists()
    assert sw.apply(False)[0] is False                      # twice: harmless


def test_an_unusual_original_target_comes_back(etc, tmp_path):
    (etc / "maintenance.php").write_text("m")
    os.symlink(b"maintenance.php", etc / "active.php")
    sw = switch(etc, tmp_path)
    sw.apply(True)
    assert "maintenance.php" in sw.describe(False)
    sw.apply(False)
    assert os.readlink(etc / "active.php") == "maintenance.php"


def test_absent_link_is_created_and_failback_points_at_readwrite(etc, tmp_path):
    sw = switch(etc, tmp_path)
    assert sw.apply(True)[0] is True
    assert sw.apply(False)[0] is True
    assert os.readlink(etc / "active.php") == str(etc / "readwrite.php")


def test_swap_renames_over_the_old_link_and_leaves_no_temp(etc, tmp_path, monkeypatch):
    os.symlink("readwrite.php", etc / "active.php")
    sw = switch(etc, tmp_path)
    seen = []
    real_replace = os.replace

    def spy(src, dst):   # at the moment of the rename the old link must still be in place
        if os.path.islink(src):
            seen.append((os.readlink(dst), os.readlink(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    sw.apply(True)
    assert seen == [(os.fsencode("readwrite.php"), os.fsencode(etc / "readonly.php"))]
    assert sorted(p.name for p in etc.iterdir()) == ["active.php", "readonly.php", "readwrite.php"]


def test_a_regular_file_at_the_link_is_refused_and_a_missing_target_too(etc, tmp_path):
    (etc / "active.php").write_text("not a link")
    sw = switch(etc, tmp_path)
    (check,) = sw.precheck(True)
    assert check.refuses and "not a symlink" in check.value
    (etc / "active.php").unlink()
    (etc / "readonly.php").unlink()
    checks = {c.name: c for c in sw.precheck(True)}
    assert checks["app.link"].ok and checks["app.target"].refuses


def test_flag_file_created_removed_and_a_previous_one_restored(tmp_path):
    flag = tmp_path / "readonly.lock"
    sw = FlagFileSwitch(flag, "Read-only now.", tmp_path / "state")
    assert sw.apply(True) == (True, f"wrote {flag}")
    assert flag.read_bytes() == b"Read-only now.\n"
    assert sw.apply(True)[0] is False
    assert sw.apply(False)[0] is True and not flag.exists()
    assert sw.apply(False)[0] is False
    flag.write_bytes(b"maintenance until 15:00")
    sw.apply(True)
    sw.apply(False)
    assert flag.read_bytes() == b"maintenance until 15:00"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["readonly.lock", "state"]


def fo(etc: Path, **kw) -> FailoverConfig:
    return FailoverConfig(database="host=x", link=etc / "active.php", readonly=etc / "readonly.php",
                          readwrite=etc / "readwrite.php", **kw)


def test_plan_orders_flip_then_each_server_then_reload(etc, tmp_path):
    cfg = fo(etc, memcached=(("10.0.0.1", 11211), ("10.0.0.2", 11212)),
             reload_command="systemctl reload php8.2-fpm")
    plan = steps.build_plan(cfg, switch(etc, tmp_path), readonly=True)
    assert [s.name for s in plan] == ["app config", "memcached 10.0.0.1:11211",
                                      "memcached 10.0.0.2:11212", "reload"]
    assert [s.kind for s in plan] == ["flip", "flush", "flush", "reload"]
    assert plan[2].finish == "printf 'flush_all\\r\\nquit\\r\\n' | nc 10.0.0.2 11212"
    assert [s.name for s in steps.build_plan(fo(etc), switch(etc, tmp_path), readonly=False)] == [
        "app config"]


def test_failed_flip_skips_the_rest_and_failed_reload_shows_its_output(etc, tmp_path):
    (etc / "active.php").mkdir()           # a directory cannot be replaced by a symlink
    cfg = fo(etc, memcached=(("127.0.0.1", 1),), reload_command="sh -c 'echo boom; exit 4'")
    plan = steps.build_plan(cfg, switch(etc, tmp_path), readonly=True)
    steps.execute(plan, cfg, switch(etc, tmp_path), readonly=True)
    assert [s.status for s in plan] == [FAILED, SKIPPED, SKIPPED]
    step = Step("reload", "x", kind="reload")
    steps._reload(step, "sh -c 'echo boom; echo oops >&2; exit 4'", 30.0)
    assert step.status == FAILED and step.detail == "exit 4; output: boom | oops"
    steps._reload(step, "/nonexistent/reload", 30.0)
    assert step.status == FAILED and "could not run" in step.detail


def test_account_names_what_was_done_and_not_and_how_to_finish():
    plan = [Step("app config", "flip", status=DONE, detail="a -> b"),
            Step("memcached h:1", "flush", status=FAILED, detail="unreachable", finish="nc h 1"),
            Step("reload", "r", status=UNCHANGED, detail="exit 0")]
    lines = steps.account(plan, undo="mirrord failback", again="mirrord failover")
    assert lines[0] == "  done:      app config: a -> b; reload: exit 0"
    assert "  NOT done:  memcached h:1: unreachable" in lines
    assert "  to finish: memcached h:1: nc h 1" in lines
    assert lines[-1] == "  to undo:   mirrord failback"


def test_an_unwritable_flag_directory_is_refused_by_the_run_not_by_ready(tmp_path):
    """/ready and --dry-run run precheck as mirrord-health.service's user, whose
    ProtectSystem=strict makes the flag's directory read-only even for root: a write check
    there made /ready a 503 on every request. As with the symlink's app.link_dir, only the
    run that flips asks for write access. chattr +i stands in for the read-only mount (both
    make access(2) refuse W_OK, for root too)."""
    import subprocess

    flagdir = tmp_path / "images"
    flagdir.mkdir()
    sw = FlagFileSwitch(flagdir / "lock_readonly", "Read-only now.", tmp_path / "state")
    assert [c.ok for c in sw.writable()] == [True]
    subprocess.run(["chattr", "+i", str(flagdir)], check=True)
    try:
        assert all(c.ok for c in sw.precheck(True)), sw.precheck(True)
        [check] = sw.writable()
        assert (check.name, check.ok) == ("app.flag_dir_writable", False)
    finally:
        subprocess.run(["chattr", "-i", str(flagdir)], check=True)
    [missing] = FlagFileSwitch(tmp_path / "nope" / "flag", "x", tmp_path / "state").precheck(True)
    assert (missing.name, missing.ok) == ("app.flag_dir", False)
