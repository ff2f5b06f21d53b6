"""Ctrl-C anywhere in a command, loading the config included, is exit 130 from main():
before, one while the config loaded escaped main() as a KeyboardInterrupt traceback, and
one in a command was exit 1. (The real process, interrupted while importing:
tests/e2e/test_cli_edges.py.)"""

from __future__ import annotations

import pytest

from mirrord.cli import dispatch
from mirrord.cli import main as cli


def _interrupted(*_args, **_kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["load_config", "build_parser"])
def test_ctrl_c_before_the_command_runs_is_exit_130(monkeypatch, where):
    monkeypatch.setattr(dispatch, where, _interrupted)
    assert cli.main(["-c", "x.ini", "status"]) == 130


def test_ctrl_c_in_a_command_is_exit_130(monkeypatch, tmp_path):
    (tmp_path / "src").mkdir()
    ini = tmp_path / "m.ini"
    ini.write_text("[source:up]\npath = src\ntargets = m\n[target:m]\ntype = local\npath = mirror\n")
    from mirrord.cli import check_config

    monkeypatch.setattr(check_config, "summary", _interrupted)
    assert cli.main(["-c", str(ini), "check-config"]) == 130
