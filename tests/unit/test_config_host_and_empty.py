"""Keys checked against this host, empty values, and an empty $MIRRORD_CONFIG: each a
config error (exit 2, one line naming the file, section and key), never a bare OS error
with exit 1 nor a silent default.

Before: `ssh_command = /nonexistent/ssh -v` passed check-config and `mirrord run` died
with "mirrord: [Errno 2] No such file or directory: '/nonexistent/ssh'" (rc 1, every
other target stopped with it); a state_dir that is a file was "[Errno 17] File exists"
(rc 1) and one that cannot be made (under /proc) "[Errno 2]" (rc 1); `workers =` ran
with 8 workers; `MIRRORD_CONFIG=` loaded ./mirrord.ini or /etc/mirrord/mirrord.ini.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirrord import locks
from mirrord.config import load
from tests.unit.test_config_hostile import only, problems

MIRRORD = Path(sys.executable).with_name("mirrord")


def write(tmp_path: Path, extra: dict[str, dict[str, str]] | None = None) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    sections: dict[str, dict[str, str]] = {
        "mirrord": {"state_dir": str(tmp_path / "state")},
        "source:s": {"path": str(tmp_path / "src"), "targets": "t, r"},
        "target:t": {"type": "local", "path": str(tmp_path / "tgt")},
        "target:r": {"type": "rsync", "host": "127.0.0.1", "port": "2", "path": "/srv/m"},
        "reconcile": {"at_start": "no"},
    }
    for section, keys in (extra or {}).items():
        sections.setdefault(section, {}).update(keys)
    path = tmp_path / "m.ini"
    path.write_text("".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items())
                            for s, kv in sections.items()))
    path.chmod(0o600)
    return path


def cli(path: Path | None, *argv: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    args = [str(MIRRORD)] + (["-c", str(path)] if path else []) + list(argv)
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def one_config_error(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mirrord: config error:"), done.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in done.stderr and "Errno" not in done.stderr


# ------------------------------------------------------------------ ssh_command


@pytest.mark.parametrize("command, words", [
    ("/nonexistent/ssh -v", "'/nonexistent/ssh' does not exist"),
    ("no-such-ssh-program-here -v", "'no-such-ssh-program-here' is not found on PATH"),
    ("/etc/passwd", "'/etc/passwd' is not an executable file"),          # not executable
    ("/usr", "'/usr' is not an executable file"),                        # a directory
])
def test_an_ssh_command_whose_program_cannot_run_here_is_a_config_error(tmp_path, command, words):
    only(problems(write(tmp_path, {"target:r": {"ssh_command": command}})),
         "target:r", "ssh_command", words)


@pytest.mark.parametrize("command", ["ssh -v", "env FOO=1 ssh", "/bin/true"])
def test_an_ssh_command_that_runs_here_loads(tmp_path, command):
    assert load(write(tmp_path, {"target:r": {"ssh_command": command}})).targets["r"].rsync


@pytest.mark.parametrize("command", ["/nonexistent/ssh -v", "no-such-ssh-program-here"])
@pytest.mark.parametrize("argv", [("check-config",), ("run",), ("reconcile",)])
def test_run_reconcile_and_check_config_refuse_a_missing_ssh_program(tmp_path, argv, command):
    done = cli(write(tmp_path, {"target:r": {"ssh_command": command}}), *argv)
    one_config_error(done, "[target:r] ssh_command")


# -------------------------------------------------------------------- state_dir


@pytest.mark.parametrize("shape", ["file", "below a file"])
def test_a_state_dir_that_cannot_be_a_directory_is_a_config_error(tmp_path, shape):
    (tmp_path / "afile").write_text("x")
    state = tmp_path / "afile" / ("" if shape == "file" else "state")
    only(problems(write(tmp_path, {"mirrord": {"state_dir": str(state).rstrip("/")}})),
         "mirrord", "state_dir", "not a directory")


@pytest.mark.parametrize("argv", [("check-config",), ("run",), ("reconcile",)])
def test_every_command_refuses_a_state_dir_that_is_a_file(tmp_path, argv):
    (tmp_path / "afile").write_text("x")
    done = cli(write(tmp_path, {"mirrord": {"state_dir": str(tmp_path / "afile")},
                                "source:s": {"targets": "t"}}), *argv)
    one_config_error(done, "[mirrord] state_dir", "not a directory")


@pytest.mark.parametrize("state_dir, why", [("/proc/mirrord-state-test", "cannot be made"),
                                            ("/proc", "cannot hold")])
@pytest.mark.parametrize("argv", [("run",), ("reconcile",)])
def test_a_state_dir_that_cannot_be_made_or_written_is_exit_2_naming_the_key(
        tmp_path, state_dir, why, argv):
    done = cli(write(tmp_path, {"mirrord": {"state_dir": state_dir},
                                "source:s": {"targets": "t"}}), *argv)
    one_config_error(done, "[mirrord] state_dir", state_dir, why)


def test_a_read_only_state_dir_is_exit_2_naming_the_key(tmp_path):
    state = tmp_path / "ro"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(state)], check=True)
    try:
        done = cli(write(tmp_path, {"mirrord": {"state_dir": str(state)},
                                    "source:s": {"targets": "t"}}), "run")
    finally:
        subprocess.run(["umount", str(state)], check=True)
    one_config_error(done, "[mirrord] state_dir", "Read-only file system")


def test_locks_take_says_state_dir_when_it_cannot_be_made(tmp_path):
    from mirrord.errors import StateDirError

    (tmp_path / "afile").write_text("x")
    with pytest.raises(StateDirError, match="cannot be made"):
        locks.take(tmp_path / "afile", locks.DAEMON)


# ------------------------------------------------------------------ empty values

# (section, key): every key whose default is a value; an empty one silently meant it
EMPTY_REFUSED = [
    ("mirrord", "workers"), ("mirrord", "heartbeat_interval"), ("mirrord", "log_level"),
    ("mirrord", "log_format"), ("mirrord", "state_dir"), ("mirrord", "hostname"),
    ("source:s", "watcher"), ("source:s", "alarm_deletes"), ("source:s", "alarm_window"),
    ("source:s", "pause_on_alarm"),
    ("target:t", "workers"), ("target:t", "fsync"), ("target:t", "keep_deleted"),
    ("target:t", "keep_deleted_max"),
    ("target:r", "port"), ("target:r", "strict_host_key_checking"), ("target:r", "rsync_path"),
    ("target:r", "ssh_command"), ("target:r", "connect_timeout"), ("target:r", "batch_size"),
    ("reconcile", "every"), ("reconcile", "at_start"), ("reconcile", "delete"),
    ("reconcile", "max_delete"), ("reconcile", "checksum"),
]


@pytest.mark.parametrize("section, key", EMPTY_REFUSED, ids=lambda v: v)
def test_an_empty_value_with_a_default_is_a_problem_naming_the_key(tmp_path, section, key):
    only(problems(write(tmp_path, {section: {key: ""}})), section, key, "is empty")


S3 = {"type": "s3", "bucket": "bkt", "endpoint_url": "http://127.0.0.1:8333"}
FAILOVER = {"database": "host=db dbname=app", "mode": "flagfile", "flag": "ro.flag",
            "link": "current", "readonly": "ro", "readwrite": "rw"}


@pytest.mark.parametrize("key", ["region", "addressing_style", "multipart_threshold",
                                 "multipart_chunksize"])
def test_an_empty_s3_key_with_a_default_is_a_problem(tmp_path, key):
    path = write(tmp_path, {"target:b": {**S3, key: ""}, "source:s": {"targets": "t, b"}})
    only(problems(path), "target:b", key, "is empty")


@pytest.mark.parametrize("section, key", [
    ("failover", "mode"), ("failover", "max_replay_lag"), ("failover", "connect_timeout"),
    ("failover", "message"), ("failover", "hook_timeout"), ("health", "listen"),
    ("health", "interval")])
def test_an_empty_failover_or_health_key_with_a_default_is_a_problem(tmp_path, section, key):
    path = write(tmp_path, {"failover": dict(FAILOVER)} | {section: {key: ""}}
                 if section != "failover" else {"failover": {**FAILOVER, key: ""}})
    only(problems(path), section, key, "is empty")


@pytest.mark.parametrize("section, key", [
    ("source:s", "dest"), ("source:s", "exclude"), ("target:r", "user"),
    ("target:r", "ssh_key"), ("mirrord", "metrics_listen"),
    ("failover", "memcached"), ("failover", "primary_database"), ("failover", "pre_failover"),
    ("failover", "reload_command")])
def test_an_empty_value_whose_default_is_nothing_means_nothing(tmp_path, section, key):
    extra = {"failover": dict(FAILOVER)}
    extra.setdefault(section, {})[key] = ""
    load(write(tmp_path, extra))


def test_empty_workers_through_check_config_is_exit_2(tmp_path):
    one_config_error(cli(write(tmp_path, {"mirrord": {"workers": ""}}), "check-config"),
                     "[mirrord] workers", "is empty")


# ------------------------------------------------------------- $MIRRORD_CONFIG


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_mirrord_config_is_exit_2_not_the_default_file(tmp_path, value):
    good = write(tmp_path)
    (tmp_path / "mirrord.ini").write_text(good.read_text())   # what ./mirrord.ini would load
    done = cli(None, "check-config", env={"MIRRORD_CONFIG": value}, cwd=tmp_path)
    one_config_error(done, "MIRRORD_CONFIG", "empty")
