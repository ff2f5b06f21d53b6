"""`mirrord reconcile` finds and repairs permission-only drift on every real target type:
local, rsync (real sshd) and S3 (real SeaweedFS), files and (where kept) directories; a
second pass after the repair finds nothing. On S3 it judges by the `shipped` record when
the ETag matches, and by a HEAD (metadata mtime and mode) when it does not."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from mirrord.targets.s3 import parse_mode
from tests.integration.test_reconcile_targets import KINDS, Site, make_site


@pytest.fixture(params=KINDS)
def site(request, tmp_path) -> Site:
    return make_site(request.param, tmp_path, request)


def target_mode(site: Site, path: str) -> int | None:
    """The permission bits the target holds for `path`, read out of band."""
    if site.kind == "s3":
        head = site.remote.s3.head_object(Bucket=site.remote.bucket, Key=site.remote.prefix + path)
        return parse_mode(head["Metadata"].get("mode"))
    return stat.S_IMODE(os.stat(site.remote.root / path).st_mode)


def in_sync(t: dict) -> bool:
    return (t["missing"], t["changed"], t["extra"], t["bytes"]) == (0, 0, 0, 0)


def test_a_mode_only_change_is_found_repaired_and_then_clean(site):
    site.write("a.txt", b"alpha")
    site.write("dir/b.txt", b"bravo")
    os.chmod(site.src / "a.txt", 0o644)
    rc, t = site.reconcile()
    assert rc == 0 and t["missing"] >= 2
    assert target_mode(site, "a.txt") == 0o644
    os.chmod(site.src / "a.txt", 0o600)
    rc, t = site.reconcile()
    assert rc == 0, t
    assert (t["missing"], t["changed"], t["bytes"]) == (0, 1, 0)   # no body re-sent
    assert target_mode(site, "a.txt") == 0o600
    rc, t = site.reconcile()
    assert rc == 0 and in_sync(t), t
    site.assert_mirrored()


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_a_directory_mode_change_is_found_and_repaired(kind, tmp_path, request):
    site = make_site(kind, tmp_path, request)
    site.write("dir/b.txt", b"bravo")
    os.chmod(site.src / "dir", 0o750)
    assert site.reconcile()[0] == 0
    assert target_mode(site, "dir") == 0o750       # not the target's default 0755
    os.chmod(site.src / "dir", 0o2770)
    rc, t = site.reconcile()
    assert rc == 0 and t["changed"] == 1, t
    assert target_mode(site, "dir") == 0o2770
    rc, t = site.reconcile()
    assert rc == 0 and in_sync(t), t


def test_s3_objects_without_a_matching_shipped_row_are_judged_by_a_head(request, tmp_path):
    site = make_site("s3", tmp_path, request)
    for i in range(5):
        site.write(f"f{i}", b"data %d" % i)
    assert site.reconcile()[0] == 0
    for f in (site.base / "state").glob("journal.db*"):   # the state database is lost
        f.unlink()
    rc, t = site.reconcile()
    assert rc == 0 and in_sync(t), t               # metadata mtime and mode agree
    os.chmod(site.src / "f3", 0o600)
    for f in (site.base / "state").glob("journal.db*"):
        f.unlink()
    rc, t = site.reconcile()
    assert rc == 0 and (t["changed"], t["bytes"]) == (1, 0), t
    assert target_mode(site, "f3") == 0o600
    rc, t = site.reconcile()
    assert rc == 0 and in_sync(t), t


def test_s3_rows_shipped_before_modes_were_recorded_get_their_mode_once(request, tmp_path):
    site = make_site("s3", tmp_path, request)
    site.write("a", b"alpha")
    site.write("b", b"bravo")
    assert site.reconcile()[0] == 0
    db = sqlite3.connect(site.base / "state" / "journal.db")
    db.execute("UPDATE shipped SET mode = NULL")    # as schema 1 left them
    db.commit()
    db.close()
    rc, t = site.reconcile()
    assert rc == 0 and (t["changed"], t["bytes"]) == (2, 0), t
    rc, t = site.reconcile()
    assert rc == 0 and in_sync(t), t


def set_target_mode(site: Site, path: str, mode: int) -> None:
    """Change the mode the target holds for `path` out of band (an operator's chmod on the
    mirror host; on S3 the object's `mode` metadata copied onto itself)."""
    if site.kind == "s3":
        key = site.remote.prefix + path
        meta = site.remote.s3.head_object(Bucket=site.remote.bucket, Key=key)["Metadata"]
        site.remote.s3.copy_object(Bucket=site.remote.bucket, Key=key,
                                   CopySource={"Bucket": site.remote.bucket, "Key": key},
                                   Metadata={**meta, "mode": f"{mode:o}"},
                                   MetadataDirective="REPLACE")
        return
    os.chmod(site.remote.root / path, mode)


def test_a_mode_changed_on_the_target_is_repaired(site):
    """The source did not change; the mirror's copy did. The repair is an attr op whose
    source matches what `shipped` records, which the shipper skipped as nothing to do: every
    pass said `changed 1` and in sync, and the mode stayed (a helper's trial). On S3 the
    listing has no mode and the ETag stays: `--checksum` reads each object's metadata."""
    site.write("a.txt", b"alpha")
    site.write("dir/b.txt", b"bravo")
    os.chmod(site.src / "a.txt", 0o644)
    assert site.reconcile()[0] == 0
    set_target_mode(site, "a.txt", 0o600)
    set_target_mode(site, "dir/b.txt", 0o666)
    args = ("--checksum",) if site.kind == "s3" else ()
    rc, t = site.reconcile(*args)
    assert rc == 0 and (t["missing"], t["changed"], t["bytes"]) == (0, 2, 0), t
    assert target_mode(site, "a.txt") == 0o644
    assert target_mode(site, "dir/b.txt") == stat.S_IMODE(os.stat(site.src / "dir/b.txt").st_mode)
    rc, t = site.reconcile()
    assert rc == 0 and in_sync(t), t
    site.assert_mirrored()


def test_s3_an_mtime_changed_in_the_metadata_is_found_by_checksum(request, tmp_path):
    """An object's `mtime` metadata replaced in place (same body, same ETag): the plain pass
    judges by the record and cannot see it; `--checksum` HEADs and sends it again."""
    site = make_site("s3", tmp_path, request)
    site.write("a.txt", b"alpha")
    assert site.reconcile()[0] == 0
    key = site.remote.prefix + "a.txt"
    s3, bucket = site.remote.s3, site.remote.bucket
    meta = s3.head_object(Bucket=bucket, Key=key)["Metadata"]
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                   Metadata={**meta, "mtime": "946684800"}, MetadataDirective="REPLACE")
    rc, t = site.reconcile("--checksum")
    assert rc == 0 and t["changed"] == 1, t
    assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["mtime"] == meta["mtime"]
    rc, t = site.reconcile("--checksum")
    assert rc == 0 and in_sync(t), t
