"""The real `mirrord run` process, users' file operations, and every target checked byte for byte.

Targets: a local directory, S3 through a real SeaweedFS, and a mirror host
through rsync over a real sshd.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import MIRRORD, Mirrord, open_targets, source_files, wait_converged
from tests.e2e.helpers import write_config

EXCLUDE = "*.tmp, *.part, .*.swp, *~"


def _excluded(path: str) -> bool:
    from fnmatch import fnmatchcase

    name = path.rsplit("/", 1)[-1]
    return any(fnmatchcase(name, p.strip()) for p in EXCLUDE.split(","))


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    cfg = write_config(tmp_path, seaweedfs, sshd, exclude=EXCLUDE)
    daemon = Mirrord(cfg, tmp_path / "mirrord.log")
    targets = open_targets(cfg)
    yield tmp_path, daemon, targets
    daemon.stop()
    for t in targets.values():
        t.close()


def converge_all(src: Path, targets: dict, timeout: float = 90.0) -> None:
    for target in targets.values():
        wait_converged(src, target, timeout=timeout, excluded=_excluded)


def test_user_operations_arrive_byte_for_byte(env):
    tmp, daemon, targets = env
    src = tmp / "src"
    daemon.start()
    sh = lambda cmd: subprocess.run(cmd, shell=True, check=True, cwd=src)  # noqa: E731
    sh("mkdir -p a/b/c && printf one > a/b/c/one.txt && printf two > a/two.txt")
    sh("cp /etc/hostname copied.txt && cp -r a a-copy")
    sh("printf partial > upload.tmp && printf final-bytes >> upload.tmp && mv upload.tmp image.png")
    sh("printf 'overwritten in place' > a/two.txt")
    sh("mv a/b renamed-b && mv a-copy a-moved")
    sh("printf x > gone.txt && rm gone.txt && rm -r a-moved/b")
    sh("mkdir -p 'with space/%+-e' && printf weird > 'with space/%+-e/--rsh=x'")
    sh("printf keep > .hidden.swp")   # excluded: never shipped
    converge_all(src, targets)
    for target in targets.values():
        assert target.stat(".hidden.swp") is None
        assert target.read("image.png") == b"partialfinal-bytes"
        assert target.read("renamed-b/c/one.txt") == b"one"
    assert daemon.stop() == 0


def test_sigkill_mid_burst_loses_nothing(env):
    tmp, daemon, targets = env
    src = tmp / "src"
    daemon.start()
    killed = threading.Event()

    def burst():
        for i in range(2000):
            d = src / f"d{i % 20:02d}"
            d.mkdir(exist_ok=True)
            (d / f"f{i:04d}.bin").write_bytes(os.urandom(64) + str(i).encode())
            if i == 700:
                daemon.kill(signal.SIGKILL)
                killed.set()

    writer = threading.Thread(target=burst)
    writer.start()
    writer.join()
    assert killed.is_set()
    daemon.start()
    converge_all(src, targets, timeout=180)
    assert len(source_files(src)) == 2000
    assert daemon.stop() == 0


def test_changes_while_stopped_are_caught_up(env):
    tmp, daemon, targets = env
    src = tmp / "src"
    (src / "keep.txt").write_text("keep")
    (src / "change.txt").write_text("v1")
    (src / "drop.txt").write_text("drop")
    daemon.start()
    converge_all(src, targets)
    assert daemon.stop() == 0
    (src / "change.txt").write_text("version two")
    (src / "drop.txt").unlink()
    (src / "new").mkdir()
    (src / "new" / "file.txt").write_text("new")
    daemon.start()
    converge_all(src, targets)


def test_sigterm_exits_zero_and_status_reports(env):
    tmp, daemon, targets = env
    src = tmp / "src"
    daemon.start()
    for i in range(50):
        (src / f"s{i}.txt").write_text(str(i))
    converge_all(src, targets)
    status = daemon.status()
    assert status["daemon_pid"] == daemon.proc.pid
    for name in ("local", "s3", "host"):
        assert status["targets"][name]["pending"] == 0
        assert status["targets"][name]["shipped"] >= 50
    table = daemon.cli("status").stdout
    assert "TARGET" in table and "host" in table
    assert daemon.stop() == 0
    assert "secret" not in (tmp / "mirrord.log").read_text().lower().replace("secret_access_key", "")


def test_heartbeat_on_every_target(env):
    import json

    tmp, daemon, targets = env
    daemon.start()
    deadline = time.monotonic() + 30
    seen = {}
    while time.monotonic() < deadline and len(seen) < len(targets):
        for name, t in targets.items():
            raw = t.read_meta("heartbeat.json")
            if raw:
                seen[name] = json.loads(raw)
        time.sleep(0.2)
    assert set(seen) == set(targets)
    for name, hb in seen.items():
        assert hb["target"] == name and hb["pending"] >= 0 and abs(hb["unix"] - time.time()) < 60
        assert hb["time"].endswith("Z")


def test_a_target_down_does_not_hold_back_the_others(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    broken_parent = tmp_path / "broken"
    broken_parent.write_text("a file where the target directory's parent should be")
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = ./state
heartbeat_interval = 500ms
[source:s]
path = ./src
targets = good, bad
[target:good]
type = local
path = ./good
[target:bad]
type = local
path = {broken_parent}/mirror
""")
    daemon = Mirrord(cfg, tmp_path / "log").start()
    try:
        from mirrord.targets.local import LocalTarget

        good = LocalTarget("good", tmp_path / "good")
        for i in range(20):
            (src / f"f{i}").write_text(str(i))
        wait_converged(src, good)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            bad = daemon.status()["targets"]["bad"]
            if bad["pending"] == 20 and bad["failing"] > 0:
                break
            time.sleep(0.2)
        assert bad["pending"] == 20 and bad["last_error"]
        broken_parent.unlink()   # the outage ends: the backlog drains
        wait_converged(src, LocalTarget("bad", broken_parent / "mirror"), timeout=120)
    finally:
        assert daemon.stop() == 0


def test_targets_connect_side_by_side_at_start(tmp_path):
    """Targets open at once, each on its own thread: two mirror hosts whose SSH connection
    hangs (a host that drops packets) cost one connect timeout at start, not two. Both
    connection attempts are under way before either is let go."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_text(str(i))
    release = tmp_path / "release"
    sections = []
    for name in ("slow1", "slow2"):
        ssh = tmp_path / f"{name}-ssh"
        ssh.write_text(f"#!/bin/sh\ntouch {tmp_path}/{name}-started\n"
                       f"while [ ! -e {release} ]; do sleep 0.05; done\nexit 255\n")
        ssh.chmod(0o755)
        sections.append(f"[target:{name}]\ntype = rsync\nhost = 127.0.0.1\npath = /srv/mirror-{name}\n"
                        f"ssh_command = {ssh}\nconnect_timeout = 120\n")
    cfg = tmp_path / "m.ini"
    cfg.write_text("[mirrord]\nstate_dir = ./state\n[source:s]\npath = ./src\n"
                   "targets = slow1, slow2, good\n[target:good]\ntype = local\npath = ./good\n"
                   + "".join(sections))
    daemon = Mirrord(cfg, tmp_path / "log")
    starting = threading.Thread(target=daemon.start)
    starting.start()
    try:
        deadline = time.monotonic() + 60   # a hang guard, not a timing check
        while not all((tmp_path / f"{n}-started").exists() for n in ("slow1", "slow2")):
            assert time.monotonic() < deadline, "one target's connection waited for the other's"
            time.sleep(0.05)
        release.touch()
        starting.join()
        from mirrord.targets.local import LocalTarget

        wait_converged(src, LocalTarget("good", tmp_path / "good"))
        log = (tmp_path / "log").read_text()
        assert "target=slow1" in log and "target=slow2" in log   # each named as unreachable
    finally:
        release.touch()
        starting.join()
        assert daemon.stop() == 0


def test_missing_source_is_a_clear_runtime_error(tmp_path):
    cfg = tmp_path / "m.ini"
    cfg.write_text("[source:s]\npath = ./nope\ntargets = t\n[target:t]\ntype = local\npath = ./t\n")
    res = subprocess.run([MIRRORD, "-c", str(cfg), "run"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "nope" in res.stderr and "Traceback" not in res.stderr


def test_bad_config_exits_2_naming_file_section_key(tmp_path):
    cfg = tmp_path / "bad.ini"
    cfg.write_text("[mirrord]\nworkers = many\n[source:s]\npath = ./src\ntargets = ghost\n")
    res = subprocess.run([MIRRORD, "-c", str(cfg), "run"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert f"{cfg}: [mirrord] workers:" in res.stderr
    assert f"{cfg}: [source:s] targets: names no [target:ghost] section" in res.stderr
    assert "Traceback" not in res.stderr


def test_second_daemon_on_same_state_is_refused(tmp_path):
    (tmp_path / "src").mkdir()
    cfg = tmp_path / "m.ini"
    cfg.write_text("[source:s]\npath = ./src\ntargets = t\n[target:t]\ntype = local\npath = ./t\n")
    first = Mirrord(cfg, tmp_path / "log").start()
    try:
        res = subprocess.run([MIRRORD, "-c", str(cfg), "run"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 1 and "another mirrord daemon" in res.stderr
    finally:
        assert first.stop() == 0


def test_python_dash_m_works(tmp_path):
    import sys

    res = subprocess.run([sys.executable, "-m", "mirrord", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("mirrord ")
    assert shutil.which("mirrord") or Path(MIRRORD).exists()
