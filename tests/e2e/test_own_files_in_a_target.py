"""The real `mirrord reconcile` and `check-config` refuse a config whose state_dir (or
failover flag) overlaps a target's root on this host, before touching anything.

Before: `[mirrord] state_dir = R/state` with an rsync target on 127.0.0.1 at `path = R`
passed check-config (exit 0), and `mirrord reconcile` deleted the state database and
lock files on the "target" as extras (`extra=5 deletes=5`, exit 0): the state dir gone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import MIRRORD


def rsync_config(tmp: Path, sshd, state: Path, root: Path, extra: str = "") -> Path:
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("a")
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = {state}

[source:up]
path = {src}
targets = host

[target:host]
type = rsync
host = {sshd.host}
port = {sshd.port}
user = {sshd.user}
path = {root}
ssh_key = {sshd.key_path}
known_hosts = {sshd.known_hosts}
strict_host_key_checking = yes
{extra}""")
    cfg.chmod(0o600)
    return cfg


def everything(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in sorted(where.rglob("*"))
            if p.is_file()}


def refused(cfg: Path, *argv: str, key: str = "[mirrord] state_dir") -> None:
    done = subprocess.run([MIRRORD, "-c", str(cfg), *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mirrord: config error: {cfg}: {key}: "), \
        done.stderr
    assert "[target:host] path" in lines[0], lines[0]


@pytest.mark.parametrize("where", ["inside", "equal", "around"])
def test_reconcile_refuses_a_state_dir_overlapping_a_loopback_rsync_root(tmp_path, sshd,
                                                                          where):
    root = sshd.new_root()
    state, target = {"inside": (root / "state", root), "equal": (root, root),
                     "around": (root, root / "mirror")}[where]
    state.mkdir(exist_ok=True)
    for name in ("journal.db", "daemon.lock", "reconcile.lock", "failover.log"):
        (state / name).write_bytes(b"kept " + name.encode())
    cfg = rsync_config(tmp_path, sshd, state, target)
    before = everything(root)
    refused(cfg, "check-config")
    refused(cfg, "reconcile")
    refused(cfg, "reconcile", "--dry-run")
    assert everything(root) == before   # nothing deleted, nothing written


def test_reconcile_refuses_a_failover_flag_inside_a_loopback_rsync_root(tmp_path, sshd):
    root = sshd.new_root()
    (root / "readonly.flag").write_text("read-only")
    fo = (f"\n[failover]\ndatabase = host=db dbname=app\nmode = flagfile\n"
          f"flag = {root / 'readonly.flag'}\n")
    cfg = rsync_config(tmp_path, sshd, tmp_path / "state", root, fo)
    refused(cfg, "check-config", key="[failover] flag")
    refused(cfg, "reconcile", key="[failover] flag")
    assert (root / "readonly.flag").read_text() == "read-only"
    assert not (tmp_path / "state").exists()
