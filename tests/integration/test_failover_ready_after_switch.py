"""/ready and mirrord_ready once this host has switched (README, Readiness).

With the primary stopped, the replica's WAL receiver check fails by design: /ready is
503 and only `failover --force` goes ahead (the operator decides). Once that failover
is made, the mirror serves the site: /ready is 200 with "switched" in its body and the
refusing checks listed as warnings, so keepalived's track_script gives the mirror the
floating IP; after failback the normal judgement is back. Both switch modes. Before,
/ready stayed 503 for the whole outage (a breaker).
"""

from __future__ import annotations

import pytest

from tests.integration.test_failover_health import Service, checks
from tests.integration.test_failover_procedure import site  # noqa: F401 (fixture)


def _ready_metric(service: Service) -> str:
    text = service.get("/metrics")[1].decode()
    return next(line for line in text.splitlines() if line.startswith("mirrord_ready{"))


@pytest.mark.parametrize("mode", ["symlink", "flagfile"])
def test_ready_after_a_forced_failover_and_normal_again_after_failback(pg, site, mode,  # noqa: F811
                                                                       tmp_path):
    if mode == "flagfile":
        site.configure(mode="flagfile", flag=str(tmp_path / "etc" / "readonly.flag"),
                       link=None, readonly=None, readwrite=None)
    service = Service(site)
    try:
        doc = service.wait_ready(200)
        assert doc["switched"] is None
        pg.stop_primary()
        doc = service.wait_ready(503)        # before any switch: the operator decides
        assert "replica.wal_receiver" in " ".join(doc["failing"])
        assert doc["switched"] is None
        assert _ready_metric(service).endswith(" 0.0")
        assert site.run("failover") == 3     # refused without --force
        assert site.run("failover", "--force") == 0
        doc = service.wait_ready(200)
        assert doc["switched"]["action"] == "failover", doc
        assert doc["failing"] == []
        warned = " ".join(doc["warnings"])
        assert "replica.wal_receiver" in warned and "already switched" in warned
        assert checks(doc)["switch.state"]["status"] == "ok"
        assert _ready_metric(service) == 'mirrord_ready{failing_check=""} 1.0'
        assert site.run("failover", "--dry-run") == 0   # the same judgement: would go ahead
        pg.start_primary()
        pg.wait_streaming()
        assert site.run("failback") == 0
        pg.stop_primary()
        doc = service.wait_ready(503)        # failed back: the normal judgement again
        assert doc["switched"] is None
        assert _ready_metric(service).endswith(" 0.0")
    finally:
        service.close()
        if not pg.primary.running:
            pg.start_primary()
        pg.wait_streaming()
