"""The account of an INCOMPLETE run repeats the config and the flags the run needed.

Before, a forced failover that ended INCOMPLETE advised `mirrord failover` again
without --force; with the primary still down that was refused (exit 3, a breaker).
"""

from __future__ import annotations

from tests.integration.test_failover_procedure import site  # noqa: F401 (fixture)


def test_a_forced_incomplete_failover_advises_force_again(pg, site, memcached,  # noqa: F811
                                                          capsys):
    memcached.stop(1)
    pg.stop_primary()
    try:
        assert site.run("failover") == 3
        assert site.run("failover", "--force") == 1
        out = capsys.readouterr().out
        again = f"mirrord -c {site.ini} failover --force"
        assert f"run `{again}` again" in out
        memcached.start(1)
        args = again.split()[1:]
        assert site.run(*args[2:]) == 0   # following the advice works
    finally:
        pg.start_primary()
        pg.wait_streaming()
