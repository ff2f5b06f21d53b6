"""The heartbeat read from an S3 target (real SeaweedFS), as the daemon would leave it there."""

from __future__ import annotations

import re

import pytest

from mirrord import targets
from mirrord.config import load
from tests.integration.test_failover_procedure import Site, heartbeat_doc


@pytest.fixture
def s3_site(tmp_path, pg, memcached, seaweedfs) -> Site:
    site = Site(tmp_path, pg, memcached)
    site.target_lines = [
        "type = s3", f"bucket = {seaweedfs.new_bucket()}", "prefix = wiki/images/",
        f"endpoint_url = {seaweedfs.endpoint_url}", f"region = {seaweedfs.region}",
        f"access_key_id = {seaweedfs.access_key}", f"secret_access_key = {seaweedfs.secret_key}",
        "addressing_style = path"]
    site.configure()
    site.mirror = targets.create(load(site.ini).targets["mirror"])
    site.mirror.open()
    return site


def test_fresh_heartbeat_on_s3_passes(s3_site, capsys):
    s3_site.write_heartbeat()
    assert s3_site.run("failover", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "ok            heartbeat.age" in out and "ok            heartbeat.pending" in out


def test_stale_heartbeat_on_s3_is_reported(s3_site, capsys):
    s3_site.mirror.write_meta("heartbeat.json", heartbeat_doc(age=600, pending=7))
    assert s3_site.run("failover") == 0
    out = capsys.readouterr().out
    assert re.search(r"WARN          heartbeat.age            value=60\d\.\ds  limit=60s", out)
    assert "WARN          heartbeat.pending        value=7 (oldest 0.4s)  limit=0" in out
    assert s3_site.check("heartbeat.pending")["data"]["pending"] == 7


def test_unreadable_s3_heartbeat_is_a_warning_for_failover_and_refuses_switchover(s3_site, capsys):
    wrong = "wrong-secret-Zq81x"   # SignatureDoesNotMatch: the bucket is there, unreadable
    s3_site.target_lines = [line if not line.startswith("secret_access_key") else
                            f"secret_access_key = {wrong}" for line in s3_site.target_lines]
    s3_site.configure(switchover_timeout="1s")
    assert s3_site.run("failover", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "WARN          heartbeat.age            value=none" in out
    assert s3_site.run("switchover") == 3
    out = capsys.readouterr().out
    assert "FAIL          heartbeat.age            value=none" in out
    assert wrong not in out


def test_a_bucket_that_does_not_exist_refuses_failover_unless_forced(s3_site, capsys):
    """No bucket is no mirror (as a local root that does not exist): a switch would serve
    no uploads. It was a warning, as an unreadable heartbeat is (a breaker)."""
    s3_site.target_lines[1] = "bucket = no-such-bucket-here"
    s3_site.configure()
    assert s3_site.run("failover", "--dry-run") == 3
    out = capsys.readouterr().out
    assert "FAIL          heartbeat.age            value=none" in out and "NoSuchBucket" in out
    assert s3_site.run("failover", "--dry-run", "--force") == 0
