"""The commands that only read a target leave it as they found it (real SeaweedFS,
PostgreSQL, memcached).

Found by a breaker: `failover --dry-run`, health's /ready, the failover procedure's
heartbeat read, `trash`, `undelete --dry-run` and `reconcile --dry-run` opened targets
as the daemon does. On the mirror host no mirrord process holds a target's open lock
(the daemon runs on the primary), so each of them swept: the primary's S3 multipart
upload in flight was aborted (its daemon then logged NoSuchUpload for a 300 MB file,
over and over), `.mirrord/tmp/` was emptied, and a missing root (an NFS mount point
whose mount was gone) was made an empty directory, after which failover said "is
mirrord running on the primary?" instead of naming the missing root. They now open
targets read-only (Target.open(readonly=True)).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord import targets
from mirrord.cli import main as cli_main
from mirrord.config import load
from tests.integration.test_failover_health import Service, checks
from tests.integration.test_failover_procedure import Site, site  # noqa: F401 (fixture)

PREFIX = "wiki/images/"
BIG = PREFIX + "big/video.mp4"


def _commands_ini(site: Site, tmp_path: Path) -> Path:
    """The same target with keep_deleted and a source: what trash, undelete and reconcile
    need (on the mirror host the operator may run them against the mirror)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_bytes(b"a")
    ini = tmp_path / "commands.ini"
    ini.write_text("\n".join([
        "[mirrord]", f"state_dir = {tmp_path / 'cstate'}", "",
        "[source:up]", f"path = {src}", "targets = mirror", "",
        "[target:mirror]", *site.target_lines, "keep_deleted = 7d", "",
        "[reconcile]", "at_start = no", ""]))
    ini.chmod(0o600)
    return ini


def _each_reading_command(site: Site, tmp_path: Path, after, *, trash_exit: int = 0,
                          failover_exit: int = 0) -> None:
    """Run every command that only reads the mirror; call `after(name)` after each.
    `trash_exit`: what `trash` exits with (1 when the target cannot be opened);
    `failover_exit`: what failover exits with (3, refused, when the root is missing)."""
    site.mirror.close()   # the test's own open must not hold the lock for the commands
    assert site.run("failover", "--dry-run") == failover_exit
    after("failover --dry-run")
    svc = Service(site)
    try:
        svc.ready()
    finally:
        svc.close()
    after("health /ready")
    ini = _commands_ini(site, tmp_path)
    assert cli_main.main(["-c", str(ini), "trash"]) == trash_exit
    after("trash")
    assert cli_main.main(["-c", str(ini), "trash", "--json"]) == trash_exit
    after("trash --json")
    cli_main.main(["-c", str(ini), "undelete", "--dry-run", "a.txt"])   # nothing kept: 1
    after("undelete --dry-run")
    cli_main.main(["-c", str(ini), "reconcile", "--dry-run"])   # a.txt is missing: 1
    after("reconcile --dry-run")
    assert site.run("failover") == failover_exit   # it reads the heartbeat the same way
    after("failover")


@pytest.fixture
def s3_site(tmp_path, pg, memcached, seaweedfs) -> Site:
    site = Site(tmp_path, pg, memcached)
    site.target_lines = [
        "type = s3", f"bucket = {seaweedfs.new_bucket()}", f"prefix = {PREFIX}",
        f"endpoint_url = {seaweedfs.endpoint_url}", f"region = {seaweedfs.region}",
        f"access_key_id = {seaweedfs.access_key}", f"secret_access_key = {seaweedfs.secret_key}",
        "addressing_style = path"]
    site.configure()
    site.mirror.close()
    site.mirror = targets.create(load(site.ini).targets["mirror"])
    site.mirror.open()
    site.write_heartbeat()
    return site


def test_the_primarys_multipart_upload_survives_every_reading_command(s3_site, seaweedfs,
                                                                       tmp_path):
    bucket = s3_site.target_lines[1].split(" = ")[1]
    client = seaweedfs.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key=BIG)["UploadId"]
    client.upload_part(Bucket=bucket, Key=BIG, UploadId=upload, PartNumber=1,
                       Body=b"x" * (5 << 20))

    def after(command: str) -> None:
        found = client.list_multipart_uploads(Bucket=bucket, Prefix=PREFIX).get("Uploads", [])
        assert [(u["Key"], u["UploadId"]) for u in found] == [(BIG, upload)], \
            f"`{command}` aborted the primary's upload in flight"

    _each_reading_command(s3_site, tmp_path, after)
    client.complete_multipart_upload(   # the primary's daemon can still finish it
        Bucket=bucket, Key=BIG, UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": client.list_parts(
            Bucket=bucket, Key=BIG, UploadId=upload)["Parts"][0]["ETag"]}]})


def test_a_staged_file_in_the_local_mirror_survives_every_reading_command(site, tmp_path):
    staged = site.root / "mirror" / ".mirrord" / "tmp" / "tmpupload-in-flight"
    staged.write_bytes(b"half of a big upload")
    own = sorted(os.listdir(site.root / "mirror" / ".mirrord"))

    def after(command: str) -> None:
        assert staged.read_bytes() == b"half of a big upload", f"`{command}` swept it"
        assert sorted(os.listdir(site.root / "mirror" / ".mirrord")) == own, command

    _each_reading_command(site, tmp_path, after)


def test_a_missing_mirror_root_is_named_and_nothing_is_created(site, tmp_path, capsys):
    """The mirror host's mount is missing: no command makes the mount point a directory,
    and failover and /ready say the root is missing, not that the primary is silent."""
    gone = tmp_path / "mnt" / "mirror"
    site.target_lines = ["type = local", f"path = {gone}"]
    site.configure()

    def after(command: str) -> None:
        assert not (tmp_path / "mnt").exists(), f"`{command}` created the missing root"

    site.mirror.close()
    # a silent primary only warns failover; a mirror root that is not there refuses it (a
    # breaker: with a healthy replica it went ahead and would have served no uploads)
    assert site.run("failover", "--dry-run") == 3
    out = capsys.readouterr().out
    assert f"the mirror root {gone} does not exist" in out, out
    assert "failing over would serve an empty mirror" in out, out
    assert "is mirrord running on the primary" not in out
    svc = Service(site)
    try:
        _, doc = svc.ready()
    finally:
        svc.close()
    assert f"the mirror root {gone} does not exist" in checks(doc)["heartbeat.age"]["message"]
    _each_reading_command(site, tmp_path, after, trash_exit=1, failover_exit=3)
    err = capsys.readouterr().err   # trash, undelete and reconcile name it too
    assert err.count(f"the mirror root {gone} does not exist") >= 3, err
