"""Path-valued keys are relative to the config file's directory (README), whatever the
working directory; the files a target reads (`ca_bundle`, `ssh_key`, `known_hosts`) are
checked at load, one problem naming file, section and key (mirrord/config/keyfiles.py);
a command's program is never a relative path (mirrord/config/values.py parse_command).

Before: `ca_bundle = keys/ca.pem` was kept as written and worked only when run from the
config's directory (from `/`, systemd's working directory, every request failed "SSL
validation failed ... [Errno 2]", naming neither the file nor the key); a missing
absolute ca_bundle, a missing ssh_key, a key others may read (ssh ignores it) and a
missing known_hosts under strict checking all passed check-config; `reload_command =
./bin/reload` ran from `/`, after the flip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mirrord.config import load
from tests.unit.test_config_hostile import only, problems

MIRRORD = Path(sys.executable).with_name("mirrord")


def write(tmp_path: Path, extra: dict[str, dict[str, str]]) -> Path:
    """A config in tmp_path/conf with a local, an S3 and an rsync target, plus `extra`."""
    conf = tmp_path / "conf"
    (conf / "src").mkdir(parents=True, exist_ok=True)
    sections = {
        "mirrord": {"state_dir": "state"},
        "source:up": {"path": "src", "targets": "mirror, bucket, host"},
        "target:mirror": {"type": "local", "path": "mirror"},
        "target:bucket": {"type": "s3", "bucket": "bkt", "endpoint_url": "https://s3.example.org"},
        "target:host": {"type": "rsync", "host": "mirror.example.org", "path": "/srv/m"},
    }
    for section, keys in extra.items():
        sections.setdefault(section, {}).update(keys)
    path = conf / "m.ini"
    path.write_text("".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items())
                            for s, kv in sections.items()))
    path.chmod(0o600)
    return path


def touch(conf: Path, name: str, mode: int = 0o600) -> Path:
    path = conf / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    path.chmod(mode)
    return path


FAILOVER = {"database": "host=db dbname=app", "mode": "symlink", "link": "app/current",
            "readonly": "app/ro", "readwrite": "app/rw"}
# every path-valued key of the README's tables: (section, key, value, the Config's value)
PATH_KEYS = [
    ("mirrord", "state_dir", "st", lambda c: c.mirrord.state_dir),
    ("source:up", "path", "src", lambda c: c.sources[0].path),
    ("target:mirror", "path", "mirror", lambda c: c.targets["mirror"].local.path),
    ("target:bucket", "ca_bundle", "keys/ca.pem", lambda c: Path(c.targets["bucket"].s3.ca_bundle)),
    ("target:host", "ssh_key", "keys/id", lambda c: c.targets["host"].rsync.ssh_key),
    ("target:host", "known_hosts", "keys/kh", lambda c: c.targets["host"].rsync.known_hosts),
    ("failover", "link", "app/current", lambda c: c.failover.link),
    ("failover", "readonly", "app/ro", lambda c: c.failover.readonly),
    ("failover", "readwrite", "app/rw", lambda c: c.failover.readwrite),
    ("failover", "flag", "app/ro.flag", lambda c: c.failover.flag),
]


@pytest.mark.parametrize("section, key, value, pick", PATH_KEYS, ids=[k[1] for k in PATH_KEYS])
def test_every_path_key_is_relative_to_the_config_directory(tmp_path, monkeypatch, section,
                                                             key, value, pick):
    conf = tmp_path / "conf"
    for name in ("keys/ca.pem", "keys/id", "keys/kh"):
        touch(conf, name)
    extra = {"failover": dict(FAILOVER)}
    extra.setdefault(section, {})[key] = value
    path = write(tmp_path, extra)
    monkeypatch.chdir("/")     # systemd's working directory
    assert pick(load(path)) == (conf / value).resolve()


@pytest.mark.parametrize("key, value", [("ca_bundle", "keys/ca.pem"),
                                        ("ca_bundle", "/nonexistent/ca.pem")])
def test_a_missing_ca_bundle_is_a_problem_naming_the_key(tmp_path, key, value):
    found = problems(write(tmp_path, {"target:bucket": {key: value}}))
    only(found, "target:bucket", "ca_bundle", "does not exist")
    assert str((tmp_path / "conf" / value).resolve()) in found[0][2]


@pytest.mark.parametrize("section, key", [("target:bucket", "ca_bundle"),
                                          ("target:host", "ssh_key"),
                                          ("target:host", "known_hosts")])
@pytest.mark.parametrize("what", ["a directory", "below a file"])
def test_a_key_file_that_is_not_a_file_is_a_problem(tmp_path, section, key, what):
    conf = tmp_path / "conf"
    (conf / "keys").mkdir(parents=True)
    touch(conf, "afile")
    value = "keys" if what == "a directory" else "afile/x"
    found = problems(write(tmp_path, {section: {key: value}}))
    only(found, section, key, "a directory" if what == "a directory" else "not a directory")


def test_a_missing_ssh_key_is_a_problem(tmp_path):
    only(problems(write(tmp_path, {"target:host": {"ssh_key": "keys/id"}})),
         "target:host", "ssh_key", "does not exist")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_an_ssh_key_others_may_read_is_a_problem(tmp_path, mode):
    touch(tmp_path / "conf", "keys/id", mode)
    only(problems(write(tmp_path, {"target:host": {"ssh_key": "keys/id"}})),
         "target:host", "ssh_key", "chmod 600")


def test_a_missing_known_hosts_is_a_problem_only_with_strict_checking(tmp_path):
    touch(tmp_path / "conf", "keys/id")
    host = {"ssh_key": "keys/id", "known_hosts": "keys/kh"}
    only(problems(write(tmp_path, {"target:host": {**host, "strict_host_key_checking": "yes"}})),
         "target:host", "known_hosts", "does not exist")
    for strict in ("accept-new", "no"):   # ssh makes it on the first connection
        cfg = load(write(tmp_path, {"target:host": {**host, "strict_host_key_checking": strict}}))
        assert cfg.targets["host"].rsync.known_hosts == tmp_path / "conf" / "keys" / "kh"


@pytest.mark.parametrize("section, key", [("target:host", "ssh_command"),
                                          ("failover", "reload_command"),
                                          ("failover", "pre_failover"),
                                          ("failover", "post_failback")])
@pytest.mark.parametrize("program", ["./bin/tool", "bin/tool", "~/bin/tool", "../tool"])
def test_a_command_whose_program_is_a_relative_path_is_a_problem(tmp_path, section, key,
                                                                  program):
    touch(tmp_path / "conf", "bin/tool", 0o755)
    extra = {"failover": dict(FAILOVER)}
    extra.setdefault(section, {})[key] = f"{program} --flag"
    found = problems(write(tmp_path, extra))
    only(found, section, key, "relative path")


@pytest.mark.parametrize("command", ["ssh -v", "/usr/bin/ssh -v", "env X=1 ssh"])
def test_a_command_by_name_or_absolute_path_loads(tmp_path, command):
    load(write(tmp_path, {"target:host": {"ssh_command": command},
                          "failover": {**FAILOVER, "reload_command": command}}))


def test_check_config_from_the_root_directory_names_the_missing_ca_bundle(tmp_path):
    """As systemd runs it: working directory /, config named by an absolute path."""
    path = write(tmp_path, {"target:bucket": {"ca_bundle": "keys/ca.pem"}})
    done = subprocess.run([str(MIRRORD), "-c", str(path), "check-config"], cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    want = (f"mirrord: config error: {path}: [target:bucket] ca_bundle: "
            f"{tmp_path / 'conf' / 'keys' / 'ca.pem'} does not exist")
    assert done.stderr.strip() == want
    touch(tmp_path / "conf", "keys/ca.pem")
    done = subprocess.run([str(MIRRORD), "-c", str(path), "check-config", "--json"], cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f'"ca_bundle": "{tmp_path / "conf" / "keys" / "ca.pem"}"' in done.stdout
