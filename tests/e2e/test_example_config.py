"""The repository's own mirrord.ini does what the README's quick start says: `make run`
uses it as it is, with no server. It named an ssh key file that only a real mirror host
has, and key files are checked at load for every target (mirrord/config/keyfiles.py), so
`make run` and `check-config` failed on a fresh clone (a new user's first command)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.reliability.conftest import poll

REPO = Path(__file__).resolve().parents[2]


def example(tmp_path: Path) -> Path:
    """The example copied beside an empty demo tree, as `make run` prepares it."""
    shutil.copy(REPO / "mirrord.ini", tmp_path / "mirrord.ini")
    for d in ("demo/uploads", "demo/mirror"):
        (tmp_path / d).mkdir(parents=True)
    return tmp_path / "mirrord.ini"


def mirrord(*args: str, cwd: Path, **kw):
    return subprocess.Popen([sys.executable, "-m", "mirrord", *args], cwd=cwd,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), **kw)


def test_check_config_accepts_the_example_from_any_directory(tmp_path):
    ini = example(tmp_path)
    p = mirrord("-c", str(ini), "check-config", cwd=Path("/"), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert err == "" and out.startswith(f"{ini}: ok")


def test_make_runs_command_mirrors_the_demo_tree_and_stops_on_sigterm(tmp_path):
    ini = example(tmp_path)
    log = tmp_path / "log"
    with open(log, "wb") as fh:
        daemon = mirrord("-c", str(ini), "run", cwd=tmp_path, stdout=fh, stderr=subprocess.STDOUT)
    try:
        poll(lambda: b"msg=watching" in log.read_bytes() or daemon.poll() is not None,
             what="the daemon watching")
        assert daemon.poll() is None, log.read_text()
        (tmp_path / "demo/uploads/sub").mkdir()
        (tmp_path / "demo/uploads/sub/photo.jpg").write_bytes(b"a user's photo")
        (tmp_path / "demo/uploads/upload.tmp").write_bytes(b"excluded")
        mirrored = tmp_path / "demo/mirror/sub/photo.jpg"
        poll(lambda: mirrored.exists() and mirrored.read_bytes() == b"a user's photo",
             what="the file mirrored")
        poll(lambda: (tmp_path / "demo/mirror/.mirrord/heartbeat.json").exists(),
             what="the heartbeat")
        assert not (tmp_path / "demo/mirror/upload.tmp").exists()
    finally:
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(60)
    assert rc == 0, log.read_text()
    assert b"Traceback" not in log.read_bytes()
