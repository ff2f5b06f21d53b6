"""The systemd unit offers the fanotify watcher's capabilities, off unless asked for
(issue 18): the shipped unit carries them commented out, the role's template renders
exactly those lines with `mirrord_fanotify: true` and none by default, and systemd
accepts the unit with them."""

from __future__ import annotations

import sys
from pathlib import Path

import jinja2

from tests.integration.test_systemd_units import (ROLE, parse_unit, role_defaults, shipped,
                                                  unit_lines, verify)

FANOTIFY_LINES = ["AmbientCapabilities=CAP_SYS_ADMIN CAP_DAC_READ_SEARCH",
                  "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_DAC_READ_SEARCH",
                  "SystemCallFilter=fanotify_init fanotify_mark open_by_handle_at"]


def render(**overrides) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    return env.get_template("mirrord.service.j2").render({**role_defaults(), **overrides})


def test_off_by_default_and_offered_commented_out_in_the_shipped_unit():
    assert role_defaults()["mirrord_fanotify"] is False
    assert not any(line.startswith("AmbientCapabilities") for line in unit_lines(render()))
    commented = [line[1:] for line in shipped("mirrord.service").splitlines()
                 if line[1:] in FANOTIFY_LINES and line.startswith("#")]
    assert commented == FANOTIFY_LINES
    text = shipped("mirrord.service")
    assert "CAP_SYS_ADMIN is broad" in text and "read ANY file" in text


def test_the_role_grants_them_when_asked_and_systemd_accepts_the_unit(tmp_path: Path):
    rendered = render(mirrord_fanotify=True)
    lines = unit_lines(rendered)
    assert [line for line in lines if line in FANOTIFY_LINES] == FANOTIFY_LINES
    # the empty CapabilityBoundingSet= comes first: a later non-empty one adds to it
    caps = [line for line in lines if line.startswith("CapabilityBoundingSet=")]
    assert caps == ["CapabilityBoundingSet=", FANOTIFY_LINES[1]]
    assert parse_unit(rendered)["Service"]["NoNewPrivileges"] == "yes"  # ambient caps kept
    mirrord = Path(sys.executable).parent / "mirrord"
    (tmp_path / "mirrord.service").write_text(
        rendered.replace(f"{role_defaults()['mirrord_venv']}/bin/mirrord", str(mirrord)))
    res = verify(tmp_path, ["mirrord.service"])
    assert res.returncode == 0, res.stderr
