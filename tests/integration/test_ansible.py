"""The Ansible roles and playbooks: lint, syntax, and a real run against this machine.

Both roles are applied with `ansible-playbook -c local` into scratch paths under
a temporary directory (no system user is created: the daemon's user is the
one running the tests, and service management is off), twice, and the second
run must change nothing. The installed `mirrord` then accepts both rendered
configuration files, and systemd accepts the rendered units.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOKS = ["site.yml", "failover.yml", "switchover.yml", "failback.yml"]
# Two full playbook runs (one of them a pip install) on a shared two-core machine.
pytestmark = pytest.mark.timeout(1500)
FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"


def ansible_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    })
    env.pop("MIRRORD_CONFIG", None)
    return env


def run(cmd: list[str], *, env: dict[str, str], cwd: Path = ANSIBLE_DIR,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)


def test_ansible_lint_production_profile(tmp_path):
    env = ansible_env(tmp_path / "ansible-home")
    env["ANSIBLE_LINT_SKIP_SCHEMA_UPDATE"] = "1"
    result = run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
                 env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout + result.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook, tmp_path):
    result = run([str(BIN / "ansible-playbook"), "-i", "inventory.example.ini", "--syntax-check", playbook],
                 env=ansible_env(tmp_path / "ansible-home"))
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ the real run


@dataclass
class Deployment:
    base: Path
    runs: list[subprocess.CompletedProcess[str]]
    seconds: list[float]

    @property
    def venv(self) -> Path:
        return self.base / "venv"

    def path(self, *parts: str) -> Path:
        return self.base.joinpath(*parts)


def _copy_source(dest: Path) -> None:
    """The project as an sdist would hold it: pip builds a directory in place, and
    its build/ output must not land in the working tree under test."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "mirrord", dest / "mirrord",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _common_vars(base: Path, side: str) -> dict:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "mirrord_install_source": str(base / "src"),
        "mirrord_python": sys.executable,
        "mirrord_venv": str(base / "venv"),
        "mirrord_manage_user": False,
        "mirrord_user": user,
        "mirrord_group": group,
        "mirrord_config_owner": user,
        "mirrord_config_owner_group": group,
        "mirrord_config_dir": str(base / side / "etc"),
        "mirrord_config_path": str(base / side / "etc" / "mirrord.ini"),
        "mirrord_state_dir": str(base / side / "state"),
        "mirrord_systemd_dir": str(base / side / "units"),
        "mirrord_manage_services": False,
    }


def _primary_play(base: Path) -> dict:
    return {
        "name": "Primary",
        "hosts": "localhost",
        "gather_facts": False,
        "roles": ["mirrord"],
        "vars": {
            **_common_vars(base, "primary"),
            "mirrord_settings": {"workers": 4, "heartbeat_interval": "2s", "log_level": "info",
                                 "log_format": "json", "metrics_listen": "127.0.0.1:9464"},
            "mirrord_sources": [{"name": "uploads", "path": str(base / "uploads"),
                                 "targets": ["local", "s3", "host"],
                                 "exclude": ["*.tmp", "*.part", ".*.swp", "*~", ".nfs*"],
                                 "alarm_deletes": 500, "alarm_window": "30s", "pause_on_alarm": True}],
            "mirrord_targets": [
                {"name": "local", "type": "local", "path": str(base / "mirror-data"), "fsync": True,
                 "keep_deleted": "7d", "keep_deleted_max": "50G"},
                {"name": "s3", "type": "s3", "bucket": "mirror", "prefix": "uploads/", "keep_deleted": "1d",
                 "endpoint_url": "http://127.0.0.1:8333", "region": "us-east-1",
                 "access_key_id": "AKIDEXAMPLE", "secret_access_key": "not-a-real-secret"},
                {"name": "host", "type": "rsync", "host": "mirror.example.org", "port": 22,
                 "user": "mirrord", "path": "/srv/mirror/uploads", "ssh_key_content": FAKE_KEY},
            ],
            "mirrord_reconcile": {"every": "1h", "delete": True, "max_delete": "5%"},
            "mirrord_read_write_paths": [str(base / "extra")],
        },
    }


def _mirror_play(base: Path) -> dict:
    wiki = base / "wiki"
    return {
        "name": "Mirror",
        "hosts": "localhost",
        "gather_facts": False,
        "roles": ["mirrord_mirror"],
        "vars": {
            **_common_vars(base, "mirror"),
            # the mirror's files apart from the mirror side's own state_dir (base/mirror/state):
            # a state_dir inside a local target's path is refused (reconcile would delete it)
            "mirrord_mirror_targets": [{"name": "mirror", "type": "local",
                                        "path": str(base / "mirror-data")}],
            "mirrord_mirror_failover": {
                "database": "host=127.0.0.1 port=5433 dbname=wiki user=mirrord",
                "max_replay_lag": "30s",
                "heartbeat_target": "mirror",
                "max_heartbeat_age": "60s",
                "mode": "symlink",
                "link": str(wiki / "active.php"),
                "readonly": str(wiki / "readonly.php"),
                "readwrite": str(wiki / "readwrite.php"),
                "memcached": ["127.0.0.1:11211", "127.0.0.1:11212"],
            },
            "mirrord_mirror_readonly_content": "<?php $wgReadOnly = 'mirror';\n",
            "mirrord_mirror_readwrite_content": "<?php $wgReadOnly = false;\n",
            "mirrord_mirror_app_config_owner": pwd.getpwuid(os.getuid()).pw_name,
            "mirrord_mirror_app_config_group": grp.getgrgid(os.getgid()).gr_name,
            "mirrord_mirror_operators": ["deploy", "%wikiops"],
            "mirrord_mirror_sudoers_file": str(base / "sudoers.d" / "mirrord"),
            "mirrord_mirror_health": {"listen": "127.0.0.1:9189", "interval": "3s"},
        },
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Deployment:
    base = tmp_path_factory.mktemp("deploy")
    for d in ("uploads", "mirror", "mirror-data", "extra", "sudoers.d"):
        (base / d).mkdir()
    _copy_source(base / "src")
    playbook = base / "playbook.yml"
    playbook.write_text(json.dumps([_primary_play(base), _mirror_play(base)], indent=2))
    env = ansible_env(base / "ansible-home")
    env["ANSIBLE_ROLES_PATH"] = str(ANSIBLE_DIR / "roles")
    runs, seconds = [], []
    for _ in range(2):
        start = time.monotonic()
        runs.append(run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
                        env=env, cwd=base))
        seconds.append(time.monotonic() - start)
    return Deployment(base=base, runs=runs, seconds=seconds)


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    m = re.search(r"^localhost\s+:\s+(.*)$", result.stdout, re.MULTILINE)
    assert m, result.stdout + result.stderr
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def test_first_run_succeeds(deployment):
    first = deployment.runs[0]
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    counts = recap(first)
    assert counts["failed"] == 0 and counts["unreachable"] == 0
    assert counts["changed"] > 0


def test_second_run_changes_nothing(deployment):
    second = deployment.runs[1]
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    counts = recap(second)
    changed = re.findall(r"^changed: .*$", second.stdout, re.MULTILINE)
    assert counts["changed"] == 0, changed
    assert counts["failed"] == 0


@pytest.mark.parametrize("side", ["primary", "mirror"])
def test_installed_mirrord_accepts_the_rendered_config(deployment, side):
    config = deployment.path(side, "etc", "mirrord.ini")
    result = subprocess.run([str(deployment.venv / "bin" / "mirrord"), "-c", str(config), "check-config"],
                            text=True, capture_output=True, timeout=120,
                            env={**os.environ, "MIRRORD_CONFIG": ""})
    assert result.returncode == 0, config.read_text() + result.stdout + result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr


def test_rendered_config_holds_every_section(deployment):
    text = deployment.path("primary", "etc", "mirrord.ini").read_text()
    for line in ("[mirrord]", f"state_dir = {deployment.path('primary', 'state')}",
                 "log_format = json", "metrics_listen = 127.0.0.1:9464", "[source:uploads]",
                 "targets = local, s3, host", "exclude = *.tmp, *.part, .*.swp, *~, .nfs*",
                 "[target:local]", "fsync = yes", "[target:s3]", "[target:host]",
                 f"ssh_key = {deployment.path('primary', 'etc', 'ssh', 'host')}",
                 "[reconcile]", "max_delete = 5%"):
        assert line in text.splitlines(), (line, text)
    assert "ssh_key_content" not in text and "[failover]" not in text
    mirror = deployment.path("mirror", "etc", "mirrord.ini").read_text()
    assert "[failover]" in mirror
    assert "memcached = 127.0.0.1:11211, 127.0.0.1:11212" in mirror.splitlines()
    assert "[health]" not in text
    lines = mirror.splitlines()
    health = lines.index("[health]")
    assert lines[health + 1:health + 3] == ["interval = 3s", "listen = 127.0.0.1:9189"], mirror


def _section(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"[{name}]") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    return [line for line in lines[start:end] if line]


def test_rendered_config_holds_the_keep_and_alarm_keys_only_where_set(deployment):
    """keep_deleted(_max) per target and the mass-change alarm keys per source are
    written when the play sets them and left out otherwise (mirrord's defaults apply)."""
    text = deployment.path("primary", "etc", "mirrord.ini").read_text()
    source = _section(text, "source:uploads")
    assert {"alarm_deletes = 500", "alarm_window = 30s", "pause_on_alarm = yes"} <= set(source), text
    assert {"keep_deleted = 7d", "keep_deleted_max = 50G"} <= set(_section(text, "target:local")), text
    s3 = _section(text, "target:s3")
    assert "keep_deleted = 1d" in s3 and not any(k.startswith("keep_deleted_max") for k in s3), text
    assert not any(k.startswith("keep_deleted") for k in _section(text, "target:host")), text
    mirror = deployment.path("mirror", "etc", "mirrord.ini").read_text()
    assert "keep_deleted" not in mirror and "alarm_" not in mirror, mirror


def test_secrets_are_private(deployment):
    key = deployment.path("primary", "etc", "ssh", "host")
    assert key.read_text() == FAKE_KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(deployment.path("primary", "etc", "mirrord.ini").stat().st_mode) == 0o600
    assert stat.S_IMODE(deployment.path("primary", "state").stat().st_mode) == 0o750


def test_mirror_app_config_link_points_at_readwrite(deployment):
    link = deployment.path("wiki", "active.php")
    assert link.is_symlink()
    assert os.readlink(link) == str(deployment.path("wiki", "readwrite.php"))
    assert deployment.path("wiki", "readonly.php").read_text().startswith("<?php")


def test_sudoers_drop_in_is_valid(deployment):
    sudoers = deployment.path("sudoers.d", "mirrord")
    assert stat.S_IMODE(sudoers.stat().st_mode) == 0o440
    text = sudoers.read_text()
    mirrord = f"{deployment.venv}/bin/mirrord -c {deployment.path('mirror', 'etc', 'mirrord.ini')}"
    assert f"{mirrord} failover --force" in text and f"{mirrord} failback --force" in text
    assert "deploy ALL=(root) NOPASSWD: MIRRORD_FAILOVER" in text
    assert "%wikiops ALL=(root) NOPASSWD: MIRRORD_FAILOVER" in text
    check = subprocess.run(["/usr/sbin/visudo", "-cf", str(sudoers)], text=True, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_rendered_units_pass_systemd_analyze_verify(deployment):
    units = deployment.path("primary", "units")
    names = ["mirrord.service", "mirrord-reconcile.service", "mirrord-reconcile.timer"]
    text = (units / "mirrord.service").read_text()
    assert f"ExecStart={deployment.venv}/bin/mirrord -c {deployment.path('primary', 'etc', 'mirrord.ini')} run" in text
    assert f"ReadWritePaths={deployment.path('primary', 'state')}" in text
    assert f"ReadWritePaths=-{deployment.path('mirror-data')}" in text
    assert f"ReadWritePaths=-{deployment.path('extra')}" in text
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: make test installs Debian's systemd package"
    result = subprocess.run([analyze, "verify", *[f"./{n}" for n in names]], cwd=units,
                            text=True, capture_output=True, timeout=120)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_units_ship_as_package_data(deployment):
    found = list(deployment.venv.glob("lib/python3*/site-packages/mirrord/systemd/*"))
    assert sorted(p.name for p in found) == sorted(
        ["mirrord.service", "mirrord-reconcile.service", "mirrord-reconcile.timer",
         "mirrord-health.service"])


def test_report_durations(deployment, capsys):
    with capsys.disabled():
        print(f"\nansible runs: first {deployment.seconds[0]:.0f}s, second {deployment.seconds[1]:.0f}s")


def test_mirror_health_unit_is_rendered_and_verified(deployment):
    units = deployment.path("mirror", "units")
    text = (units / "mirrord-health.service").read_text()
    config = deployment.path("mirror", "etc", "mirrord.ini")
    assert f"ExecStart={deployment.venv}/bin/mirrord -c {config} health" in text
    assert f"ReadWritePaths={deployment.path('mirror', 'state')}" in text
    result = subprocess.run([shutil.which("systemd-analyze"), "verify", "./mirrord-health.service"],
                            cwd=units, text=True, capture_output=True, timeout=120)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), \
        result.stdout + result.stderr


def test_a_config_change_restarts_the_health_service():
    """The INI template's task notifies a topic the mirrord role's handler listens on: mirrord
    health reads [failover] and [health] only at start (the run above has no systemd to show it)."""
    import yaml

    role = ANSIBLE_DIR / "roles" / "mirrord"
    tasks = yaml.safe_load((role / "tasks" / "config.yml").read_text())
    task = next(t for t in tasks if t.get("ansible.builtin.template", {}).get("src") == "mirrord.ini.j2")
    handlers = yaml.safe_load((role / "handlers" / "main.yml").read_text())
    restart = [h for h in handlers if h.get("listen") in task["notify"]
               and h["ansible.builtin.systemd_service"]["name"] == "mirrord-health.service"]
    assert len(restart) == 1, (task["notify"], handlers)
    assert restart[0]["ansible.builtin.systemd_service"]["state"] == "restarted"
    assert "mirrord_health_enabled" in restart[0]["when"]


def test_role_accepts_every_failover_and_health_key():
    """The role's argument specs reject unknown sub-keys, so a key mirrord reads but the spec
    lacks (a hook, check_url) would fail the play before the INI is written."""
    import yaml

    from mirrord.config import _FAILOVER_KEYS, _HEALTH_KEYS

    spec = yaml.safe_load((ANSIBLE_DIR / "roles" / "mirrord" / "meta" / "argument_specs.yml")
                          .read_text())["argument_specs"]["main"]["options"]
    assert set(spec["mirrord_failover"]["options"]) == set(_FAILOVER_KEYS)
    assert set(spec["mirrord_health"]["options"]) == set(_HEALTH_KEYS)


@pytest.mark.parametrize("role, sources, targets", [
    ("mirrord", "mirrord_sources", "mirrord_targets"),
    ("mirrord_mirror", "mirrord_mirror_sources", "mirrord_mirror_targets"),
])
def test_role_accepts_every_source_and_target_key(role, sources, targets):
    """Likewise for [source:NAME] and [target:NAME]: a key such as keep_deleted or
    pause_on_alarm that the spec lacked would fail the play."""
    import yaml

    from mirrord.config import _COMMON_TARGET_KEYS, _SOURCE_KEYS, _TARGET_KEYS

    spec = yaml.safe_load((ANSIBLE_DIR / "roles" / role / "meta" / "argument_specs.yml")
                          .read_text())["argument_specs"]["main"]["options"]
    assert set(spec[sources]["options"]) == set(_SOURCE_KEYS) | {"name"}
    ini_keys = set(_COMMON_TARGET_KEYS).union(*_TARGET_KEYS.values())
    assert set(spec[targets]["options"]) == ini_keys | {"name", "ssh_key_src", "ssh_key_content"}
    assert spec[sources]["options"]["pause_on_alarm"]["type"] == "bool"
    assert spec[sources]["options"]["alarm_deletes"]["type"] == "int"


def test_a_bad_value_fails_the_play_and_leaves_the_live_config(deployment):
    """The template task validates the rendered file with `mirrord check-config`: a value
    mirrord refuses fails the play at that task, naming the key, and the live file (the
    deployment's) stays as it was, so no restart loops on exit 2 (a trial)."""
    config = deployment.base / "primary" / "etc" / "mirrord.ini"
    before = config.read_bytes()
    play = _primary_play(deployment.base)
    play["vars"]["mirrord_settings"] = {**play["vars"]["mirrord_settings"], "workers": "lots"}
    playbook = deployment.base / "bad-playbook.yml"
    playbook.write_text(json.dumps([play], indent=2))
    env = ansible_env(deployment.base / "ansible-home")
    env["ANSIBLE_ROLES_PATH"] = str(ANSIBLE_DIR / "roles")
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                             str(playbook)], env=env, cwd=deployment.base, text=True,
                            capture_output=True)
    assert result.returncode != 0, result.stdout
    assert "Write the configuration file" in result.stdout, result.stdout
    assert "workers" in result.stdout + result.stderr, result.stdout
    assert config.read_bytes() == before
