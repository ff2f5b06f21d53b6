"""Security: no credential in any output, a warning for a readable secret, nothing written
outside a target's root, S3 objects private. (No option injection into rsync/ssh is
checked with hostile file names in test_hostile_input.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mirrord import config as config_mod, targets as target_registry
from tests.e2e.helpers import MIRRORD
from tests.reliability.conftest import Env, converge, poll, write_config

PASSWORD = "Hunter2-pg-" + os.urandom(4).hex()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _secret_config(tmp: Path, seaweedfs, sshd, metrics_port: int) -> Path:
    cfg = write_config(tmp, seaweedfs, sshd, extra=f"log_level = debug\nmetrics_listen = 127.0.0.1:{metrics_port}")
    closed = _free_port()
    text = cfg.read_text().replace("targets = local, s3, host", "targets = local, s3, host, nobucket, down")
    text += f"""
[target:nobucket]
type = s3
bucket = no-such-bucket-{os.urandom(3).hex()}
endpoint_url = {seaweedfs.endpoint_url}
access_key_id = {seaweedfs.access_key}
secret_access_key = {seaweedfs.secret_key}
addressing_style = path

[target:down]
type = s3
bucket = whatever
endpoint_url = http://127.0.0.1:{closed}
access_key_id = {seaweedfs.access_key}
secret_access_key = {seaweedfs.secret_key}

[failover]
database = host=127.0.0.1 port={closed} dbname=wiki user=wiki password={PASSWORD}
mode = flagfile
flag = {tmp}/readonly.flag
"""
    cfg.write_text(text)
    cfg.chmod(0o600)
    return cfg


def test_no_credential_in_logs_status_metrics_or_errors(tmp_path, seaweedfs, sshd):
    port = _free_port()
    cfg = _secret_config(tmp_path, seaweedfs, sshd, port)
    e = Env(tmp_path, cfg)
    secrets = [seaweedfs.secret_key, PASSWORD]
    try:
        e.daemon.start()
        for i in range(20):
            (e.src / f"f{i}.txt").write_text(str(i))
        converge(e.src, e.targets["s3"])
        status = poll(lambda: (d := e.daemon.cli("status", "--json").stdout)
                      and all(f'"{t}"' in d for t in ("nobucket", "down"))
                      and e.daemon.status()["targets"]["nobucket"]["last_error"]
                      and e.daemon.status()["targets"]["down"]["last_error"] and d,
                      timeout=120, what="errors from the broken targets")
        outputs = {
            "status --json": status,
            "status": e.daemon.cli("status").stdout,
            "check-config": _both(e.daemon.cli("check-config", check=False)),
            "check-config --json": _both(e.daemon.cli("check-config", "--json", check=False)),
            "reconcile --dry-run --json": _both(e.daemon.cli("reconcile", "--dry-run", "--json",
                                                             check=False)),
            "metrics": urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode(),
        }
        for name, t in e.targets.items():
            if name in ("local", "s3", "host"):
                outputs[f"heartbeat {name}"] = (poll(lambda t=t: t.read_meta("heartbeat.json"),
                                                     what="heartbeat") or b"").decode()
        assert e.daemon.stop() == 0
        outputs["log"] = e.log_text()
        assert "NoSuchBucket" in outputs["log"] and "down" in outputs["log"]
        for where, text in outputs.items():
            for secret in secrets:
                assert secret not in text, f"credential in {where}"
        outputs["exceptions"] = _target_exception_texts(cfg, seaweedfs)
        for secret in secrets + ["WrongSecret"]:
            assert secret not in outputs["exceptions"]
    finally:
        e.close()


def _both(res: subprocess.CompletedProcess) -> str:
    return res.stdout + res.stderr


def _target_exception_texts(cfg_path: Path, seaweedfs) -> str:
    """str() and repr() of what the S3 target raises, wrong secret included."""
    cfg = config_mod.load(cfg_path)
    texts = []
    wrong = cfg_path.read_text().replace(seaweedfs.secret_key, "WrongSecretWrongSecret123")
    wrong_path = cfg_path.with_name("wrong.ini")
    wrong_path.write_text(wrong)
    wrong_path.chmod(0o600)
    for c in (cfg, config_mod.load(wrong_path)):
        for name in ("s3", "nobucket", "down"):
            target = target_registry.create(c.targets[name])
            for call in (target.open, lambda t=target: list(t.list()),
                         lambda t=target: t.put("x.txt", str(cfg_path), size=1, mtime=0.0)):
                try:
                    call()
                except Exception as exc:  # noqa: BLE001 - every error text is checked
                    texts.append(f"{exc} {exc!r} {exc.__cause__!r} {exc.__context__!r}")
    assert texts, "no error raised at all"
    return "\n".join(texts)


@pytest.mark.parametrize("mode,warns", [(0o644, True), (0o640, True), (0o600, False)])
def test_config_readable_by_others_while_holding_a_secret_warns(tmp_path, mode, warns):
    (tmp_path / "src").mkdir()
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"""[source:s]
path = ./src
targets = b
[target:b]
type = s3
bucket = mirror-bucket
access_key_id = AKIAEXAMPLE
secret_access_key = sEcReT-{os.urandom(4).hex()}
""")
    cfg.chmod(mode)
    res = subprocess.run([MIRRORD, "-c", str(cfg), "check-config"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert ("readable by others" in res.stderr) is warns
    assert "sEcReT-" not in res.stdout + res.stderr


@pytest.mark.parametrize("mode,warns", [(0o644, True), (0o600, False)])
def test_a_config_with_problems_still_warns_of_a_readable_secret(tmp_path, mode, warns):
    """The warning is shown beside the problems: before, a file with any problem printed
    only the problems, so the operator fixed them and never learnt the secret was readable."""
    secret = f"sEcReT-{os.urandom(4).hex()}"
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"""[source:s]
path = ./missing-src
targets = b
[target:b]
type = s3
bucket = mirror-bucket
access_key_id = AKIAEXAMPLE
secret_access_key = {secret}
workers = many
""")
    cfg.chmod(mode)
    res = subprocess.run([MIRRORD, "-c", str(cfg), "check-config"], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert "config error" in res.stderr and "workers" in res.stderr
    assert ("readable by others" in res.stderr) is warns
    assert secret not in res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def test_conninfo_password_in_a_readable_config_warns(tmp_path):
    (tmp_path / "src").mkdir()
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"""[source:s]
path = ./src
targets = t
[target:t]
type = local
path = ./dst
[failover]
database = host=db dbname=wiki password={PASSWORD}
mode = flagfile
flag = ./ro.flag
""")
    cfg.chmod(0o644)
    res = subprocess.run([MIRRORD, "-c", str(cfg), "check-config", "--json"], capture_output=True,
                         text=True)
    assert "readable by others" in res.stderr
    assert PASSWORD not in res.stdout + res.stderr


def _host_root(env: Env) -> Path:
    return Path(env.targets["host"].root.decode())


def test_nothing_written_outside_a_targets_root(env, tmp_path):
    """Symlinks planted in the mirror (by anyone with access to it) are replaced, never
    followed: the file lands inside the root and the outside stays untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("must stay")
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    local_root = Path(env.targets["local"].root)
    for root in (local_root, _host_root(env)):
        root.mkdir(parents=True, exist_ok=True)
        os.symlink(outside, root / "escape")
        os.symlink(outside / "victim", root / "victim")
        os.symlink(outside, root / "dirlink")
    env.daemon.start()
    (env.src / "escape").mkdir()
    (env.src / "escape" / "f.txt").write_text("belongs inside the mirror")
    (env.src / "escape" / "deeper").mkdir()
    (env.src / "escape" / "deeper" / "g.txt").write_text("deeper")
    (env.src / "victim").write_text("overwrites the link, not its target")
    (env.src / "dirlink").write_text("a file where the mirror has a symlinked directory")
    env.converge()
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
    for root in (local_root, _host_root(env)):
        assert not (root / "escape").is_symlink() and not (root / "victim").is_symlink()
    assert env.daemon.stop() == 0


def test_s3_objects_are_private(env, seaweedfs):
    env.daemon.start()
    (env.src / "photo.jpg").write_bytes(b"\xff\xd8 private")
    env.converge()
    s3 = env.targets["s3"]
    client = seaweedfs.client()
    acl = client.get_object_acl(Bucket=s3.bucket, Key="up/photo.jpg")
    public = [g for g in acl.get("Grants", [])
              if (g.get("Grantee") or {}).get("URI", "").endswith(("AllUsers", "AuthenticatedUsers"))]
    assert public == [], acl["Grants"]
    url = f"{seaweedfs.endpoint_url}/{s3.bucket}/up/photo.jpg"
    with pytest.raises(urllib.error.HTTPError) as err:   # anonymous read refused
        urllib.request.urlopen(url, timeout=10).read()
    assert err.value.code in (401, 403)
    assert env.daemon.stop() == 0
