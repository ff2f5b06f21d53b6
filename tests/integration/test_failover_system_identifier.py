"""The mirror's database and the primary must be one cluster: their system identifiers.

switchover waits until the replica has replayed the primary's WAL position. Pointed at
another cluster (a `database` or `primary_database` naming the wrong server, a primary
made anew with initdb), that comparison means nothing: the wait could end "caught up"
and the site would be switched to another database's data. failback would send the site
back to a primary that may lack what the mirror's database held. Against the real pair
and a third, unrelated server.
"""

from __future__ import annotations

import os

from tests.integration.test_failover_procedure import (  # noqa: F401 (fixtures)
    HeartbeatWriter,
    Site,
    _output,
    site,
)
from tests.services.postgres import PgServer

CHECK = "replica.system_identifier"


def _ident(server: PgServer) -> str:
    return str(server.sql("SELECT system_identifier FROM pg_control_system()")[0])


def test_switchover_refuses_a_primary_of_another_cluster_before_waiting(
        site: Site, other_cluster: PgServer, capsys):
    site.configure(primary_database=other_cluster.conninfo(), switchover_timeout="2s")
    with HeartbeatWriter(site):
        assert site.run("switchover") == 3
    out = _output(capsys)
    assert f"FAIL          {CHECK}" in out and "another cluster than the primary" in out, out
    assert _ident(site.pg.replica) in out and _ident(other_cluster) in out, out
    assert "waiting" not in out, out                       # refused before any wait
    assert "--force" not in out, out                       # switchover has none
    assert os.readlink(os.fsencode(site.link)) == site.original
    record = site.log()[-1]
    assert (record["command"], record["outcome"], record["exit"]) == ("switchover", "refused", 3)
    assert site.check(CHECK)["data"] == {"replica": _ident(site.pg.replica),
                                         "primary": _ident(other_cluster)}


def test_switchover_dry_run_shows_it(site: Site, other_cluster: PgServer, capsys):
    site.configure(primary_database=other_cluster.conninfo())
    assert site.run("switchover", "--dry-run") == 3
    assert f"FAIL          {CHECK}" in _output(capsys)


def test_failback_to_a_primary_of_another_cluster_is_refused_unless_forced(
        site: Site, other_cluster: PgServer, capsys):
    assert site.run("failover") == 0
    site.configure(primary_database=other_cluster.conninfo())
    _output(capsys)
    assert site.run("failback") == 3
    out = _output(capsys)
    assert f"FAIL          {CHECK}" in out and "made anew" in out, out
    assert "rerun with --force to accept" in out, out
    assert os.readlink(site.link) == str(site.etc / "readonly.php")   # nothing changed
    assert site.run("failback", "--force") == 0, _output(capsys)
    out = _output(capsys)
    assert f"FAIL (forced) {CHECK}" in out and "mirrord failback: done" in out, out
    assert os.readlink(os.fsencode(site.link)) == site.original
    assert site.check(CHECK)["forced"] is True


def test_one_cluster_is_one_ok_line(site: Site, capsys):
    with HeartbeatWriter(site):
        assert site.run("switchover") == 0, _output(capsys)
    assert f"ok            {CHECK}" in _output(capsys)
    assert site.check(CHECK)["data"]["replica"] == _ident(site.pg.primary)
    assert site.run("failback") == 0
    assert f"ok            {CHECK}" in _output(capsys)


def _denied(server: PgServer) -> int:
    return server.log.read_text().count("permission denied for function pg_control_system")


def test_an_identifier_that_cannot_be_read_proves_nothing(site: Site, capsys):
    """A hardened server may revoke pg_control_system(): no refusal from it, but a line
    saying nothing was compared (revoked on the primary, so the replica replays the
    revocation too), and no ERROR in either server's log for it."""
    revoke = "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC"
    site.pg.primary.sql(revoke)
    try:
        site.pg.wait_caught_up()
        before = _denied(site.pg.primary), _denied(site.pg.replica)
        with HeartbeatWriter(site):
            assert site.run("switchover") == 0, _output(capsys)
        out = _output(capsys)
        assert f"WARN          {CHECK} value=not compared" in out, out
        assert "mirrord switchover: done" in out, out
        assert "the mirror's database and the primary" in site.check(CHECK)["data"]["reason"]
        assert site.run("failback") == 0
        assert "value=not compared" in _output(capsys)
        assert (_denied(site.pg.primary), _denied(site.pg.replica)) == before
    finally:
        site.pg.primary.sql("GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC")
        site.pg.wait_caught_up()


def test_health_does_not_read_the_identifier(site: Site):
    """/ready (readiness.measure, every [health] interval) compares nothing: it does not
    read the identifier, nor show it in its body."""
    from mirrord.config import load
    from mirrord.failover import readiness
    from mirrord.failover.appconfig import from_config
    cfg = load(site.ini)
    m = readiness.measure(cfg, from_config(cfg.failover, cfg.mirrord.state_dir))
    connect = next(c for c in readiness.judge(m, cfg, now=m.taken) if c.name == "replica.connect")
    assert "system_identifier" not in connect.data


def test_one_side_unreadable_is_said(site: Site, other_cluster: PgServer, capsys):
    """database's user cannot read it, primary_database's can (another cluster, as a
    superuser): nothing compared, and the output says so rather than staying silent."""
    site.pg.primary.sql("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
    try:
        site.pg.wait_caught_up()
        site.configure(primary_database=other_cluster.conninfo("postgres"),
                       switchover_timeout="2s")
        assert site.run("switchover", "--dry-run") == 0, _output(capsys)
        out = _output(capsys)
        assert f"WARN          {CHECK} value=not compared" in out, out
        assert site.check(CHECK)["data"]["reason"].startswith(
            "pg_control_system() is not readable on the mirror's database by")
    finally:
        site.pg.primary.sql("GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC")
        site.pg.wait_caught_up()
