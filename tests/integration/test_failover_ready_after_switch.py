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


def _put_back(service: Service, pg) -> None:
    """After each test: the health service stopped, the shared primary running and
    streaming to the replica again."""
    service.close()
    if not pg.primary.running:
        pg.start_primary()
    pg.wait_streaming()


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
        _put_back(service, pg)


def test_a_read_only_link_set_by_hand_is_no_switch(pg, site):  # noqa: F811
    """No failover ever made here, the link put on readonly.php by hand (or by a deploy):
    it read as switched, so a primary outage gave /ready 200 and keepalived the IP
    without the operator's decision (a breaker). Only a switch made here counts."""
    import os
    service = Service(site)
    try:
        service.wait_ready(200)
        tmp = site.link.with_name("active.tmp")
        os.symlink(site.etc / "readonly.php", tmp)
        os.replace(tmp, site.link)
        pg.stop_primary()
        doc = service.wait_ready(503)
        assert doc["switched"] is None and "replica.wal_receiver" in " ".join(doc["failing"])
        assert _ready_metric(service).endswith(" 0.0")
    finally:
        _put_back(service, pg)


def test_once_switched_a_mirror_that_cannot_serve_is_not_ready(pg, site):  # noqa: F811
    """After a forced failover, readonly.php removed: the link dangles and the site is
    down; /ready stayed 200 (every refusing check a warning once switched: a breaker).
    What says the mirror itself cannot serve still fails it."""
    service = Service(site)
    try:
        service.wait_ready(200)
        pg.stop_primary()
        service.wait_ready(503)
        assert site.run("failover", "--force") == 0
        service.wait_ready(200)
        (site.etc / "readonly.php").unlink()
        doc = service.wait_ready(503)
        assert doc["switched"] is not None
        assert any(name.startswith("app.target") for name in doc["failing"]), doc["failing"]
        assert _ready_metric(service).endswith(" 0.0")
    finally:
        (site.etc / "readonly.php").write_text("<?php $wgReadOnly = true;\n")
        _put_back(service, pg)


def test_a_promoted_replica_after_the_switch_warns_that_failback_will_refuse(pg, site):  # noqa: F811
    """Switched, then the replica promoted by hand: the mirror still serves (200), and the
    warning says what failback will do about it (refuse, unless --force), before the
    operator meets the refusal at failback."""
    service = Service(site)
    try:
        service.wait_ready(200)
        assert site.run("failover") == 0
        pg.promote_replica()
        doc = service.wait_ready(200)
        check = checks(doc)["replica.in_recovery"]
        assert check["status"] == "WARN", check
        assert "already switched" in check["message"]
        assert "failback refuses a database that is not a standby, unless --force" in \
            check["message"]
        assert site.run("failback") == 3
    finally:
        service.close()
        pg.healthy()   # a standby of the primary again (rebuilt: PgPair.rebuild_replica)
