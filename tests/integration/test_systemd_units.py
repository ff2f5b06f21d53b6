"""The shipped systemd units: systemd accepts them, and the Ansible templates render the same units.

`systemd-analyze verify` comes from Debian's systemd package (make test
installs it); it needs ExecStart's binary to exist, so the copies under test
point at this virtual environment's `mirrord`.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "ansible" / "roles" / "mirrord"
MIRROR_ROLE = ROOT / "ansible" / "roles" / "mirrord_mirror"
ROLE_UNITS = ["mirrord.service", "mirrord-reconcile.service", "mirrord-reconcile.timer"]
UNITS = ROLE_UNITS + ["mirrord-health.service"]     # the health unit: mirrord_mirror role
SHIPPED_BIN = "/opt/mirrord/venv/bin/mirrord"


def shipped(name: str) -> str:
    return (resources.files("mirrord") / "systemd" / name).read_text()


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze is missing: make test installs Debian's systemd package"
    return path


def verify(directory: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze(), "verify", *[f"./{n}" for n in names]],
                          cwd=directory, text=True, capture_output=True, timeout=120)


def unit_lines(text: str) -> list[str]:
    """The unit without comments and blank lines: what systemd reads."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith(("#", ";"))]


def parse_unit(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(text)
    return parser


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    mirrord = Path(sys.executable).parent / "mirrord"
    assert mirrord.exists(), mirrord
    for name in UNITS:
        (tmp_path / name).write_text(shipped(name).replace(SHIPPED_BIN, str(mirrord)))
    return tmp_path


def test_systemd_analyze_verify_accepts_the_units(unit_dir):
    result = verify(unit_dir, UNITS)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not output, output


def test_verify_would_catch_a_broken_unit(unit_dir):
    broken = unit_dir / "mirrord.service"
    broken.write_text(broken.read_text().replace("Type=notify", "Type=notfy"))
    result = verify(unit_dir, ["mirrord.service"])
    assert "notfy" in result.stdout + result.stderr


def test_daemon_unit_contract():
    unit = parse_unit(shipped("mirrord.service"))
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["ExecStart"] == f"{SHIPPED_BIN} -c /etc/mirrord/mirrord.ini run"
    assert service["Restart"] == "on-failure"
    assert int(service["WatchdogSec"]) > 0
    assert service["User"] == service["Group"] == "mirrord"
    assert service["StateDirectory"] == "mirrord"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/mirrord"
    assert service["NoNewPrivileges"] == "yes"
    assert service["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_reconcile_units_contract():
    service = parse_unit(shipped("mirrord-reconcile.service"))["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].endswith(" reconcile")
    timer = parse_unit(shipped("mirrord-reconcile.timer"))
    assert timer["Timer"]["OnCalendar"] == "hourly"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["RandomizedDelaySec"]
    assert timer["Install"]["WantedBy"] == "timers.target"


# ------------------------------------------- shipped files == templates with role defaults


def role_defaults() -> dict:
    """The role's defaults and vars, with their Jinja references resolved."""
    data = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
            **yaml.safe_load((ROLE / "vars" / "main.yml").read_text())}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for _ in range(5):
        data = {k: _resolve(env, v, data) for k, v in data.items()}
    data["ansible_managed"] = "Ansible managed"
    return data


def _resolve(env: jinja2.Environment, value, context: dict):
    if isinstance(value, str) and "{{" in value:
        text = env.from_string(value).render(context)
        try:
            literal = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        return literal if isinstance(literal, (list, dict)) else text
    return value


@pytest.mark.parametrize("name", ROLE_UNITS)
def test_template_with_role_defaults_renders_the_shipped_unit(name):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    rendered = env.get_template(f"{name}.j2").render(role_defaults())
    assert unit_lines(rendered) == unit_lines(shipped(name))


def test_health_unit_contract():
    service = parse_unit(shipped("mirrord-health.service"))["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["ExecStart"] == f"{SHIPPED_BIN} -c /etc/mirrord/mirrord.ini health"
    assert service["Restart"] == "on-failure"
    assert service["User"] == service["Group"] == "mirrord"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == ""


def test_mirror_role_template_renders_the_shipped_health_unit():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(MIRROR_ROLE / "templates"),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    rendered = env.get_template("mirrord-health.service.j2").render(role_defaults())
    assert unit_lines(rendered) == unit_lines(shipped("mirrord-health.service"))
