"""A dry run changes nothing, state_dir included (a user's trial: `failover --dry-run`
made state_dir and wrote failover.log in it, although the README says a dry run
changes nothing and may run as another user)."""

from __future__ import annotations

import os

import pytest

from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


@pytest.mark.parametrize("command", ["failover", "switchover", "failback"])
def test_a_dry_run_makes_no_state_dir(site: Site, capsys, command):
    site.state.rmdir()
    assert site.run(command, "--dry-run") == 0, _output(capsys)
    out = _output(capsys)
    assert not site.state.exists(), sorted(p.name for p in site.state.rglob("*"))
    assert f"no line in {site.state / 'failover.log'} for this dry run" in out, out
    assert "[mirrord] state_dir" in out
    assert os.readlink(os.fsencode(site.link)) == site.original


def test_a_refused_dry_run_makes_no_state_dir_either(site: Site, capsys):
    site.state.rmdir()
    site.pg.stop_replica()
    assert site.run("failover", "--dry-run") == 3
    assert not site.state.exists()


def test_a_dry_run_still_logs_where_state_dir_exists(site: Site, capsys):
    assert site.run("failback", "--dry-run") == 0
    assert [(r["command"], r["outcome"], r["dry_run"]) for r in site.log()] == \
        [("failback", "dry-run", True)]
    assert "no line in" not in _output(capsys)
