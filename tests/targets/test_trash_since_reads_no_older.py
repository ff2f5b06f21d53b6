"""Target.trash_list(since=...) reaches the target: what was kept before the bound is not
read, so the work is bounded by what was kept since then, not by the size of the trash
(swaps.redundant lists one path's versions after every exchange of two files).

- local and rsync (the sshd fixture's "remote" is this machine): an inotify watch on every
  '<stamp>.<why>' directory sees which ones the listing opens (IN_OPEN: opendir, find's
  descent). Without a bound every one is opened (the watch works); with one, none older.
- S3 'copy' mode (real SeaweedFS): a botocore hook counts the ListObjectsV2 pages and the
  keys they carry, with many old stamps in the trash and a small page size.
- S3 'versioning' mode lists by the key's prefix (ListObjectVersions): the bound filters.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from inotify_simple import INotify
from inotify_simple import flags as F

from mirrord.targets.rsync import listing as rsync_listing
from mirrord.targets.s3.versioning import VERSIONING
from mirrord.trash.model import OVERWRITTEN, TRASH, entry_dir, stamp_of, stamp_time
from tests.targets.conftest import make_local, make_rsync, make_s3
from tests.targets.test_s3_trash import s3_on
from tests.targets.test_trash_conformance import put

B = 1_700_000_100
OLD = [stamp_of(B - 3600 + i) for i in range(12)] + [stamp_of(B - 0.000001)]
NEW = [stamp_of(B), stamp_of(B + 30)]


def fill(t, tmp_path, old=OLD, new=NEW) -> None:
    """'f' kept as 'overwritten' once under every stamp, each time other bytes."""
    for i, stamp in enumerate(old + new):
        put(t, tmp_path, "f", b"bytes %d" % i)
        assert t.keep("f", stamp=stamp, coming="file") > 0


@pytest.fixture(params=["local", "rsync"])
def fs_target(request, tmp_path):
    t = make_local(tmp_path) if request.param == "local" else make_rsync(
        request.getfixturevalue("sshd"))
    t.open()
    yield t
    t.close()


def root_of(t) -> Path:
    return Path(t.root if t.type == "local" else t.opts.path)


def opened_stamps(t, **kw) -> tuple[set[str], set[str]]:
    """(stamps listed, stamp directories opened) by one trash_list(**kw)."""
    trash = root_of(t) / TRASH
    with INotify() as ino:
        wds = {ino.add_watch(str(trash / entry_dir(s, OVERWRITTEN)), F.OPEN): s
               for s in OLD + NEW}
        listed = {k.stamp for k in t.trash_list(**kw)}
        opened = {wds[e.wd] for e in ino.read(timeout=0) if e.mask & F.OPEN}
    return listed, opened


def test_the_directories_of_older_stamps_are_never_opened(fs_target, tmp_path):
    fill(fs_target, tmp_path)
    assert opened_stamps(fs_target) == (set(OLD + NEW), set(OLD + NEW))   # the watch sees
    assert opened_stamps(fs_target, since=B) == (set(NEW), set(NEW))
    assert opened_stamps(fs_target, prefix="f", since=B + 1) == ({NEW[1]}, {NEW[1]})


def test_rsync_lists_with_the_bound_in_one_round_trip(sshd, tmp_path, monkeypatch):
    t = make_rsync(sshd)
    t.open()
    try:
        fill(t, tmp_path, old=OLD[:2])
        scripts: list[bytes] = []
        real = rsync_listing.records
        monkeypatch.setattr(rsync_listing, "records",
                            lambda tt, script, early: scripts.append(script) or real(tt, script, early))
        monkeypatch.setattr(t.conn, "run", None)   # no other remote command may run
        assert {k.stamp for k in t.trash_list("f", since=B)} == set(NEW)
        assert len(scripts) == 1 and b"-prune" in scripts[0]
    finally:
        t.close()


class ListCounter:
    """ListObjectsV2 requests and the keys their answers carry, through botocore's event
    hooks on the target's own client; every request asks for at most `page` keys."""

    def __init__(self, client, page: int):
        self.pages, self.keys, self.start_after = 0, 0, []
        self.page = page
        client.meta.events.register("provide-client-params.s3.ListObjectsV2", self._ask)
        client.meta.events.register("after-call.s3.ListObjectsV2", self._got)

    def _ask(self, params, **_):
        params["MaxKeys"] = self.page
        self.start_after.append(params.get("StartAfter"))

    def _got(self, parsed, **_):
        self.pages += 1
        self.keys += len(parsed.get("Contents", ()))


def test_s3_copy_mode_starts_the_listing_at_the_bound(seaweedfs, tmp_path):
    t = make_s3(seaweedfs)
    t.open()
    try:
        fill(t, tmp_path)
        count = ListCounter(t.client, page=3)
        assert {k.stamp for k in t.trash_list("f")} == set(OLD + NEW)
        assert (count.pages, count.keys) == (5, 15)          # 13 old + 2 new, 3 a page
        count.pages = count.keys = 0
        assert {k.stamp for k in t.trash_list("f", since=B)} == set(NEW)
        assert (count.pages, count.keys) == (1, 2)           # no old key was read
        assert count.start_after[-1] == t.root + TRASH + "/" + NEW[0]
    finally:
        t.close()


def test_s3_versioning_mode_filters_the_noncurrent_versions(seaweedfs, tmp_path):
    """Each overwrite in a versioned bucket stamps the replaced version with the new
    one's LastModified (whole seconds): wait for the next second between the two."""
    bucket = seaweedfs.new_bucket()
    seaweedfs.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    t = s3_on(seaweedfs, bucket)
    t.open()
    try:
        assert t.trash_mode() == VERSIONING
        put(t, tmp_path, "v", b"first")
        put(t, tmp_path, "v", b"second")
        [early] = t.trash_list("v")
        while time.time() < stamp_time(early.stamp) + 1.2:   # the next whole second
            time.sleep(0.05)
        put(t, tmp_path, "v", b"third")
        stamps = sorted(k.stamp for k in t.trash_list("v"))
        assert len(stamps) == 2 and stamps[0] == early.stamp < stamps[1]
        assert [k.stamp for k in t.trash_list("v", since=stamp_time(stamps[1]))] == [stamps[1]]
        assert sorted(k.stamp for k in t.trash_list(since=stamp_time(early.stamp))) == stamps
        assert list(t.trash_list(since=stamp_time(stamps[1]) + 1)) == []
    finally:
        t.close()
