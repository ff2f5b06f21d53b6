"""Credentials the service refuses never reach an output either (test_security.py covers the
accepted ones). The real daemon runs against the real SeaweedFS with a secret key it
refuses (holding '/', '+', '=' and '%', as AWS keys do) and with the right key on an
endpoint that is down; then every output is searched for the refused key: the log, status
(text and JSON), the metrics page, the local target's heartbeat, the state database,
check-config and reconcile's own output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.e2e.helpers import Mirrord
from tests.reliability.conftest import poll

WRONG = f"Mk{os.urandom(4).hex()}/+=%2Fwrong-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ini(tmp: Path, seaweedfs, metrics: int) -> Path:
    (tmp / "src").mkdir()
    bucket = seaweedfs.new_bucket()
    path = tmp / "m.ini"
    path.write_text(f"""
[mirrord]
state_dir = state
log_level = debug
metrics_listen = 127.0.0.1:{metrics}
heartbeat_interval = 1s

[source:up]
path = src
targets = local, refused, down

[target:local]
type = local
path = mirror

[target:refused]
type = s3
bucket = {bucket}
endpoint_url = {seaweedfs.endpoint_url}
access_key_id = {seaweedfs.access_key}
secret_access_key = {WRONG}
addressing_style = path

[target:down]
type = s3
bucket = {bucket}
endpoint_url = http://127.0.0.1:{_free_port()}
access_key_id = {seaweedfs.access_key}
secret_access_key = {WRONG}
""")
    path.chmod(0o600)
    return path


def _errors_shown(daemon: Mirrord) -> str | None:
    text = daemon.cli("status", "--json").stdout
    doc = daemon.status()["targets"]
    return text if all(doc.get(t, {}).get("last_error") for t in ("refused", "down")) else None


def test_a_refused_secret_key_is_never_shown(tmp_path, seaweedfs):
    port = _free_port()
    ini = _ini(tmp_path, seaweedfs, port)
    daemon = Mirrord(ini, tmp_path / "daemon.log").start()
    try:
        for i in range(5):
            (tmp_path / "src" / f"f{i}.txt").write_text(str(i))
        seen = {"status --json": poll(lambda: _errors_shown(daemon), timeout=120,
                                      what="errors from both S3 targets")}
        seen["status"] = daemon.cli("status").stdout
        seen["metrics"] = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                                 timeout=10).read().decode()
        seen["heartbeat"] = poll(lambda: _read(tmp_path / "mirror/.mirrord/heartbeat.json"),
                                 what="heartbeat")
        for args in (("check-config",), ("check-config", "--json"),
                     ("reconcile", "--dry-run", "--json"), ("reconcile", "--target", "refused")):
            res = daemon.cli(*args, check=False)
            seen[" ".join(args)] = res.stdout + res.stderr
    finally:
        assert daemon.stop() == 0
    seen["log"] = (tmp_path / "daemon.log").read_text()
    assert "SignatureDoesNotMatch" in seen["log"] or "AccessDenied" in seen["log"], seen["log"]
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file():
            seen[str(f)] = f.read_bytes().decode(errors="replace")
    for where, text in seen.items():
        for form in (WRONG, WRONG.replace("/", "%2F"), WRONG.split("/")[0]):
            assert form not in text, f"the refused secret ({form!r}) is in {where}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def test_check_config_never_echoes_a_secret_in_an_odd_place(tmp_path):
    """A secret pasted into the wrong key (a typo, a key of the other target type) is an
    unknown-key problem whose message names the key, never the value."""
    (tmp_path / "src").mkdir()
    path = tmp_path / "m.ini"
    path.write_text(f"[source:up]\npath = src\ntargets = t\n[target:t]\ntype = local\n"
                    f"path = mirror\nsecret_acess_key = {WRONG}\nsecret_access_key = {WRONG}\n")
    path.chmod(0o600)
    res = subprocess.run([str(Path(sys.executable).with_name("mirrord")), "-c", str(path),
                          "check-config"], check=False, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and "[target:t] secret_acess_key: unknown key" in res.stderr
    assert WRONG not in res.stdout + res.stderr
