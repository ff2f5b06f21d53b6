"""The installed `mirrord` console script, run as a real process: exit codes 0, 1, 3 and 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services.postgres import PASSWORD

MIRRORD = Path(sys.executable).with_name("mirrord")


def run(ini: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MIRRORD), "-c", str(ini), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def ini(tmp_path, pg, memcached) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("readonly.php", "readwrite.php"):
        (etc / name).write_text(name)
    os.symlink("readwrite.php", etc / "active.php")
    meta = tmp_path / "mirror" / ".mirrord"
    meta.mkdir(parents=True)
    now = time.time()
    (meta / "heartbeat.json").write_text(json.dumps({
        "version": 1, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "unix": now,
        "host": "primary", "target": "mirror", "pending": 0, "oldest_pending_age": 0.0,
        "interval": 5.0}))
    path = tmp_path / "mirrord.ini"
    path.write_text(f"""
[mirrord]
state_dir = {tmp_path / 'state'}

[target:mirror]
type = local
path = {tmp_path / 'mirror'}

[failover]
database = {pg.replica_conninfo}
primary_database = {pg.primary_conninfo}
heartbeat_target = mirror
link = etc/active.php
readonly = etc/readonly.php
readwrite = etc/readwrite.php
memcached = {memcached.config_value}
reload_command = true
""")
    path.chmod(0o600)
    return path


def test_failover_exit_0_then_failback(ini):
    proc = run(ini, "failover")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mirrord failover: done" in proc.stdout
    link = ini.parent / "etc" / "active.php"
    assert os.readlink(link) == str(ini.parent / "etc" / "readonly.php")
    proc = run(ini, "failback")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.readlink(link) == "readwrite.php"
    assert PASSWORD not in proc.stdout + proc.stderr


def test_failback_refused_on_a_promoted_mirror_database_until_forced(ini, pg):
    """The real process: a replica promoted by hand during the outage refuses failback
    (exit 3, nothing changed); `failback --force` goes back (exit 0)."""
    assert run(ini, "failover").returncode == 0
    pg.promote_replica()
    link = ini.parent / "etc" / "active.php"
    proc = run(ini, "failback")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "mirrord: refused: replica.in_recovery (value no, limit yes)" in proc.stderr
    assert proc.stderr.rstrip().endswith("rerun with --force to accept"), proc.stderr
    assert os.readlink(link) == str(ini.parent / "etc" / "readonly.php")
    proc = run(ini, "failback", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL (forced) replica.in_recovery" in proc.stdout
    assert os.readlink(link) == "readwrite.php"
    assert PASSWORD not in proc.stdout + proc.stderr


def test_a_primary_of_another_cluster_refuses_switchover_and_failback(ini, other_cluster):
    """The real process: `primary_database` naming another cluster than the replica's
    (system identifiers) refuses switchover before it waits, and failback unless forced."""
    text = ini.read_text()
    primary = text.split("primary_database = ", 1)[1].split("\n", 1)[0]
    ini.write_text(text.replace(primary, other_cluster.conninfo()))
    link = ini.parent / "etc" / "active.php"
    proc = run(ini, "switchover")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "mirrord: refused: replica.system_identifier" in proc.stderr, proc.stderr
    assert "waiting" not in proc.stdout and os.readlink(link) == "readwrite.php"
    assert run(ini, "failover").returncode == 0
    proc = run(ini, "failback")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stderr.rstrip().endswith("rerun with --force to accept"), proc.stderr
    assert run(ini, "failback", "--force").returncode == 0
    assert os.readlink(link) == "readwrite.php"
    assert PASSWORD not in proc.stdout + proc.stderr


def test_refused_exit_3(ini, pg):
    pg.pause_replay()
    proc = run(ini, "failover")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "mirrord: refused: replica.replay_paused (value paused, limit not paused)" in proc.stderr
    assert os.readlink(ini.parent / "etc" / "active.php") == "readwrite.php"


def test_step_failure_exit_1(ini, memcached):
    memcached.stop(0)
    proc = run(ini, "failover")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"NOT done:  memcached {memcached.name(0)}" in proc.stdout


def test_bad_config_exit_2(ini):
    ini.write_text(ini.read_text().replace("link = etc/active.php", "mode = bogus"))
    proc = run(ini, "failover")
    assert proc.returncode == 2
    assert "[failover] mode: must be symlink or flagfile, got 'bogus'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("lines,key,words", [
    ("mode = flagfile\nflag = mirrord.ini\n", "flag", "is this config file"),
    ("mode = flagfile\nflag = state/failover.log\n", "flag", "is inside [mirrord] state_dir"),
    ("link = state/failover-appconfig.json\n", "link", "is inside [mirrord] state_dir"),
    ("readonly = etc/active.php\n", "readonly", "is [failover] link"),
    ("readonly = etc/readwrite.php\n", "readonly", "is the same file as [failover] readwrite"),
    ("switchover_timeout = 0\n", "switchover_timeout", "must be greater than zero"),
])
@pytest.mark.parametrize("command", ["check-config", "failover"])
def test_a_flip_path_on_mirrords_own_files_or_an_alias_is_one_line_exit_2(ini, lines, key,
                                                                           words, command):
    text = ini.read_text()
    for line in lines.splitlines():   # replaces the key's line, or adds it
        name = line.split(" =")[0]
        text = "\n".join(x for x in text.splitlines() if not x.startswith(name + " ="))
        text += "\n" + line + "\n"
    ini.write_text(text)
    before = ini.read_bytes()
    proc = run(ini, command)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{ini}: [failover] {key}: " in proc.stderr and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ini.read_bytes() == before
    assert os.readlink(ini.parent / "etc" / "active.php") == "readwrite.php"


def test_switchover_without_primary_database_is_a_config_error(ini):
    ini.write_text("\n".join(line for line in ini.read_text().splitlines()
                             if not line.startswith("primary_database")))
    proc = run(ini, "switchover", "--dry-run")
    assert proc.returncode == 2
    assert "[failover] primary_database: is required by switchover" in proc.stderr


def test_no_failover_section_is_a_config_error(tmp_path):
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n")
    proc = run(ini, "failback")
    assert proc.returncode == 2
    assert "[failover]: this command needs a [failover] section" in proc.stderr


def test_check_config_rejects_a_memcached_value_it_could_not_flush(ini):
    ini.write_text(ini.read_text().replace("memcached = ", "memcached = memcached.sock/x, "))
    proc = run(ini, "check-config")
    assert proc.returncode == 2
    assert f"{ini}: [failover] memcached: 'memcached.sock/x': a UNIX socket path must be " \
           "absolute" in proc.stderr
    assert "Traceback" not in proc.stderr


def _get(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_health_service_serves_ready_and_stops_on_sigterm(ini):
    import signal
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ini.write_text(ini.read_text() + f"\n[health]\nlisten = 127.0.0.1:{port}\ninterval = 1s\n")
    proc = subprocess.Popen([str(MIRRORD), "-c", str(ini), "health"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                code, _ = _get(f"http://127.0.0.1:{port}/live")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.1)
        assert code == 200
        code, body = _get(f"http://127.0.0.1:{port}/ready")
        assert code == 200 and json.loads(body)["ready"] is True
        proc.send_signal(signal.SIGHUP)   # said, not obeyed: it serves on (a breaker)
        time.sleep(0.5)
        assert proc.poll() is None and _get(f"http://127.0.0.1:{port}/live")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "SIGHUP: mirrord health does not reload" in err, err
    assert PASSWORD not in out + err


def test_health_without_failover_section_is_a_config_error(tmp_path):
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n\n[health]\nlisten = 127.0.0.1:1\n")
    proc = run(ini, "health")
    assert proc.returncode == 2 and "[failover]: mirrord health needs a [failover]" in proc.stderr


def test_a_missing_mirror_root_is_named_by_failover_and_health_and_never_created(ini):
    """Found by a breaker: on a mirror host whose mount was missing, `failover --dry-run`
    and every /ready poll made the mount point an empty directory (with `.mirrord/tmp/`
    and a lock file in it), then said "is mirrord running on the primary?"."""
    import signal
    import socket
    gone = ini.parent / "mnt" / "mirror"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ini.write_text(ini.read_text().replace(f"path = {ini.parent / 'mirror'}", f"path = {gone}")
                   + f"\n[health]\nlisten = 127.0.0.1:{port}\ninterval = 1s\n")
    said = f"the mirror root {gone} does not exist"
    proc = run(ini, "failover", "--dry-run")   # no mirror at all refuses (a breaker)
    assert proc.returncode == 3 and said in proc.stdout, proc.stdout + proc.stderr
    assert "failing over would serve an empty mirror" in proc.stdout
    assert "is mirrord running" not in proc.stdout
    assert "rerun with --force to accept" in proc.stderr, proc.stderr
    proc = run(ini, "failover", "--dry-run", "--force")   # the README: --force overrides
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"FAIL \(forced\)\s+heartbeat.age", proc.stdout), proc.stdout
    health = subprocess.Popen([str(MIRRORD), "-c", str(ini), "health"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _, body = _get(f"http://127.0.0.1:{port}/ready")
                break
            except OSError:
                assert health.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        found = {c["name"]: c for c in json.loads(body)["checks"]}
        assert said in found["heartbeat.age"]["message"], body
        assert json.loads(body)["ready"] is False, body   # refused, not a warning
    finally:
        health.send_signal(signal.SIGTERM)
        health.communicate(timeout=30)
    assert not (ini.parent / "mnt").exists()


def test_a_marker_file_in_the_bare_mount_point_refuses_failover(ini, tmp_path):
    """F2: operators leave a marker (`NOT_MOUNTED`) in mount points. The mirror's file
    system gone, the root held that file only: not "empty", so failover read a silent
    primary (a warning) and would have switched to a mirror holding nothing. A root with
    no `.mirrord/` is refused like an empty one, /ready too; --force accepts it."""
    mirror = tmp_path / "mirror"
    shutil.rmtree(mirror)
    mirror.mkdir()
    (mirror / "NOT_MOUNTED").write_text("the mirror disk is not mounted\n")
    said = "the mirror root holds no .mirrord/ and no heartbeat"
    proc = run(ini, "failover", "--dry-run")
    assert proc.returncode == 3 and said in proc.stdout, proc.stdout + proc.stderr
    assert "failing over would serve an empty mirror" in proc.stdout
    proc = run(ini, "failover", "--dry-run", "--force")
    assert proc.returncode == 0 and "FAIL (forced)" in proc.stdout, proc.stdout + proc.stderr
    assert sorted(p.name for p in mirror.iterdir()) == ["NOT_MOUNTED"]   # nothing made
    assert os.readlink(tmp_path / "etc" / "active.php") == "readwrite.php"


def test_an_empty_mount_point_in_place_of_the_mirror_refuses_failover(ini, tmp_path):
    """The mirror host's NFS mount gone: the mount point stays, an empty directory. The
    read-only open found a root, no heartbeat in it, and failover took that for a silent
    primary (a warning) and would have switched to a mirror holding nothing. An empty root
    (not even `.mirrord/`) is refused like a missing one, in --dry-run, the real failover
    and /ready alike; the same root with the primary's heartbeat in it goes ahead."""
    mirror = tmp_path / "mirror"
    hb = (mirror / ".mirrord" / "heartbeat.json").read_bytes()
    (mirror / ".mirrord" / "heartbeat.json").unlink()
    (mirror / ".mirrord").rmdir()
    said = "the mirror root is empty, no mirrored file and no heartbeat"
    for args in (("failover", "--dry-run"), ("failover",)):
        proc = run(ini, *args)
        assert proc.returncode == 3 and said in proc.stdout, proc.stdout + proc.stderr
        assert "failing over would serve an empty mirror" in proc.stdout
    assert os.readlink(tmp_path / "etc" / "active.php") == "readwrite.php"   # nothing flipped
    assert list(mirror.iterdir()) == []                                      # nothing made
    # the operator accepts serving no uploads (README, the failover runbook): --force
    # flips, and still makes nothing in the mirror
    proc = run(ini, "failover", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL (forced)" in proc.stdout, proc.stdout
    assert os.readlink(tmp_path / "etc" / "active.php") == str(tmp_path / "etc" / "readonly.php")
    assert list(mirror.iterdir()) == []
    assert run(ini, "failback").returncode == 0
    assert os.readlink(tmp_path / "etc" / "active.php") == "readwrite.php"
    (mirror / ".mirrord").mkdir()   # the mount back: its heartbeat shows again
    (mirror / ".mirrord" / "heartbeat.json").write_bytes(hb)
    proc = run(ini, "failover", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_file_in_place_of_the_mirror_root_refuses_failover(ini, tmp_path):
    """A breaker: a regular file where the mirror root was (a mount point removed and a
    marker file left by that name) read as a silent primary, a warning: --dry-run exited 0
    and /ready said 200. It is no mirror, refused as a missing root; --force accepts it."""
    mirror = tmp_path / "mirror"
    shutil.rmtree(mirror)
    mirror.write_text("the mirror disk is not mounted\n")
    proc = run(ini, "failover", "--dry-run")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"the mirror root {mirror} is not a directory" in proc.stdout, proc.stdout
    assert "rerun with --force to accept" in proc.stderr, proc.stderr
    proc = run(ini, "failover", "--dry-run", "--force")
    assert proc.returncode == 0 and "FAIL (forced)" in proc.stdout, proc.stdout + proc.stderr
    assert mirror.read_text() == "the mirror disk is not mounted\n"
