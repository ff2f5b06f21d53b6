"""The source root unmounted under the daemon (never "delete everything"), and configs that
point a target at the source itself or inside it (refused at start)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import MIRRORD, source_files, target_files
from tests.reliability.conftest import Env, poll, tmpfs, umount, write_config


def _fill_source(src: Path, snapshot: dict[str, bytes] | None = None) -> dict[str, bytes]:
    files = snapshot or {f"d{i % 4}/f{i:02d}.bin": os.urandom(300) for i in range(30)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return files


def _targets_hold(env: Env, files: dict[str, bytes]) -> None:
    for name, target in env.targets.items():
        held = target_files(target)
        assert held == files, (name, sorted(set(files) - set(held)))


def test_unmounted_source_root_never_deletes_anything(tmp_path, seaweedfs, sshd):
    src = tmp_path / "src"
    src.mkdir()
    cfg = write_config(tmp_path, seaweedfs, sshd)
    e = None
    try:
        with tmpfs(src, "16m"):
            files = _fill_source(src)
            e = Env(tmp_path, cfg)
            e.daemon.start()
            e.converge()
            umount(src)                                  # the mount goes away under the daemon
            poll(lambda: "source root lost" in e.log_text(), what="root loss logged")
            assert source_files(src) == {}
            res = e.daemon.cli("reconcile", check=False)  # an operator's pass: must refuse
            assert res.returncode != 0, res.stdout
            assert e.daemon.stop() == 0
            e.daemon.start()                             # a restart on the empty mount point
            # starts lost (daemon_roots.empty_at_start): files were shipped from it
            poll(lambda: (e.daemon.status().get("daemon") or {}).get("sources", {}).get(
                "uploads", {}).get("state") == "lost", what="the empty root held lost")
            _targets_hold(e, files)
            assert e.daemon.stop() == 0
            _targets_hold(e, files)
        with tmpfs(src, "16m"):                          # back: same files, new mount
            _fill_source(src, files)
            (src / "new-after-remount.txt").write_text("new")
            e.daemon.start()
            e.converge()
            assert e.daemon.stop() == 0
    finally:
        if e is not None:
            e.close()
        umount(src)


@pytest.mark.parametrize("where", ["the source itself", "inside the source",
                                   "a symlink to the source", "around the source"])
def test_target_at_or_inside_the_source_is_refused(tmp_path, where):
    src = tmp_path / "data" / "src"
    src.mkdir(parents=True)
    (tmp_path / "link").symlink_to(src)
    path = {"the source itself": src, "inside the source": src / "mirror",
            "a symlink to the source": tmp_path / "link" / "mirror",
            "around the source": tmp_path / "data"}[where]
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"[source:s]\npath = {src}\ntargets = t\n[target:t]\ntype = local\npath = {path}\n")
    for command in ("run", "check-config"):
        res = subprocess.run([MIRRORD, "-c", str(cfg), command], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 2, res.stderr
        assert f"{cfg}: [target:t] path:" in res.stderr and "overlaps the source" in res.stderr
        assert "Traceback" not in res.stderr
    assert list(src.iterdir()) == []                     # nothing was created in the source
