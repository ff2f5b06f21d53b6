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
