"""The largest timeouts the config accepts work against the real services: PostgreSQL's
statement_timeout is an int of milliseconds and memcached's socket timeout (connect_timeout)
reaches poll(2) as one. One millisecond more is refused at load; before, it passed
check-config and every connect failed ("Value exceeds integer range"), reported as the
replica unreachable, so failback refused for ever. Real PostgreSQL pair, real memcached."""

from __future__ import annotations

import os

import pytest

from mirrord.config import load
from mirrord.errors import ConfigError
from mirrord.failover import replica
from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)

LIMIT = "2147483647ms"      # 2**31 - 1 ms, about 24.8 days


def test_the_largest_accepted_timeouts_connect_and_flush(site: Site, capsys):
    site.configure(statement_timeout=LIMIT, connect_timeout=LIMIT)
    fo = load(site.ini).failover
    with replica.connect(fo.database, connect_timeout=fo.connect_timeout,
                         statement_timeout=fo.statement_timeout) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == LIMIT
    site.fill_cache()
    assert site.run("failover") == 0, _output(capsys)
    assert site.check("replica.connect")["ok"] is True
    assert os.readlink(site.link).endswith("readonly.php")
    assert site.cached(0) is None and site.cached(1) is None      # flushed, verified


@pytest.mark.parametrize("key", ["statement_timeout", "connect_timeout"])
def test_one_millisecond_more_is_refused_at_load(site: Site, key):
    site.configure(**{key: "2147483648ms"})
    with pytest.raises(ConfigError) as exc:
        load(site.ini)
    found = [str(p) for p in exc.value.problems]
    assert len(found) == 1 and found[0].startswith(
        f"{site.ini}: [failover] {key}: too long: '2147483648ms' (at most 2147483.647s"), found
