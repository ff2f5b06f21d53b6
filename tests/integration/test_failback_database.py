"""failback and the mirror's own database, against the real PostgreSQL pair.

Failback sends the site's writes to the primary again. Before, it never looked at the
mirror's database: a replica promoted by hand during the outage (pg_promote()) went
unnoticed, failback said "done" and the site went back with two writable databases
(a user's trial). A promoted database refuses failback (exit 3) unless --force; the
database down, paused or not streaming is a warning only.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


def _promoted_after_failover(site: Site) -> None:
    assert site.run("failover") == 0
    site.pg.promote_replica()
    site.pg.replica.sql("INSERT INTO pages (body) VALUES ('written on the mirror')")


def test_failback_refused_while_the_mirror_database_is_promoted(site: Site, capsys):
    _promoted_after_failover(site)
    _output(capsys)
    assert site.run("failback") == 3
    out = _output(capsys)
    assert "FAIL          replica.in_recovery" in out and "promoted" in out, out
    assert "two writable databases" in out and "pg_rewind" in out, out
    assert "rerun with --force to accept" in out, out
    assert os.readlink(site.link) == str(site.etc / "readonly.php")   # nothing changed
    record = site.log()[-1]
    assert (record["command"], record["outcome"], record["exit"]) == ("failback", "refused", 3)
    assert site.check("replica.in_recovery")["status"] == "FAIL"


def test_failback_dry_run_shows_the_promoted_database(site: Site, capsys):
    _promoted_after_failover(site)
    _output(capsys)
    assert site.run("failback", "--dry-run") == 3
    assert "FAIL          replica.in_recovery" in _output(capsys)
    assert os.readlink(site.link) == str(site.etc / "readonly.php")


def test_failback_force_goes_back_although_the_database_is_promoted(site: Site, capsys):
    _promoted_after_failover(site)
    site.fill_cache()
    assert site.run("failback", "--force") == 0, _output(capsys)
    out = _output(capsys)
    assert "FAIL (forced) replica.in_recovery" in out and "mirrord failback: done" in out, out
    assert os.readlink(os.fsencode(site.link)) == site.original
    assert site.cached(0) is None and site.cached(1) is None
    record = site.log()[-1]
    assert record["force"] is True and record["outcome"] == "done"
    assert site.check("replica.in_recovery")["forced"] is True


def test_failback_refused_on_a_promoted_database_without_primary_database(site: Site, capsys):
    """The database check stands on its own: not only when the primary is checked too."""
    site.configure(primary_database=None)
    _promoted_after_failover(site)
    assert site.run("failback") == 3
    assert "FAIL          replica.in_recovery" in _output(capsys)


@pytest.mark.parametrize("trouble, name", [
    ("stop_replica", "replica.connect"),
    ("pause_replay", "replica.replay_paused"),
])
def test_failback_warns_while_the_mirror_database_is_not_current(site: Site, capsys, trouble,
                                                                  name):
    assert site.run("failover") == 0
    getattr(site.pg, trouble)()
    _output(capsys)
    assert site.run("failback") == 0
    out = _output(capsys)
    assert f"WARN          {name}" in out and "cannot take over again" in out, out
    assert site.pg.password not in out
    assert os.readlink(os.fsencode(site.link)) == site.original


def test_failback_checks_pass_on_a_streaming_standby(site: Site, capsys):
    assert site.run("failover") == 0
    _output(capsys)
    assert site.run("failback") == 0
    out = _output(capsys)
    for name in ("replica.connect", "replica.in_recovery", "replica.wal_receiver",
                 "replica.replay_lag"):
        assert site.check(name)["status"] == "ok", out


def test_failback_force_accepts_a_refusing_pre_hook(site: Site, capsys):
    refuse = f"{sys.executable} -c 'import sys; sys.exit(4)'"
    site.configure(pre_failback=refuse)
    assert site.run("failover") == 0
    assert site.run("failback") == 3
    assert "rerun with --force to accept" in _output(capsys)
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
    assert site.run("failback", "--force") == 0
    assert site.check("hook.pre_failback")["forced"] is True
    assert os.readlink(os.fsencode(site.link)) == site.original


def test_switchover_still_refuses_a_promoted_database(site: Site, capsys):
    """switchover has no --force: the same check refuses it, whatever is asked."""
    site.pg.promote_replica()
    assert site.run("switchover") == 3
    out = _output(capsys)
    assert "FAIL          replica.in_recovery" in out and "--force" not in out.split("refused")[-1]


def test_the_refusal_says_what_force_would_not_accept(site: Site, capsys):
    """A breaker: with the primary down too, the refusal said "rerun with --force to
    accept", and the rerun was refused again (--force never covers primary.connect)."""
    _promoted_after_failover(site)
    site.pg.stop_primary()
    _output(capsys)
    assert site.run("failback") == 3
    out = _output(capsys)
    assert "--force would accept replica.in_recovery but not primary.connect" in out, out
    assert "rerun with --force" not in out
    assert site.run("failback", "--force") == 3
    assert os.readlink(site.link) == str(site.etc / "readonly.php")


def test_force_marks_only_what_it_accepted(site: Site, capsys):
    """Warnings refuse nothing, so --force accepts nothing of them: failover.log said
    "forced" of a warning (the replica's replay paused at failback)."""
    site.configure(pre_failback=f"{sys.executable} -c 'import sys; sys.exit(4)'")
    assert site.run("failover") == 0
    site.pg.pause_replay()
    assert site.run("failback", "--force") == 0, _output(capsys)
    paused = site.check("replica.replay_paused")
    assert paused["status"] == "WARN" and paused["forced"] is False, paused
    assert site.check("hook.pre_failback")["forced"] is True
