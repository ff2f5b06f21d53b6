"""Breaker 3: a second put of the very version a target already holds (same bytes, same
mtime: a reconcile pass that listed the target while the first put was in flight, a
catch-up after a restart) destroys nothing, so keep_deleted must keep nothing. The keeper
trusts a keep-by-condition target to make that "holds already" test itself
(mirrord/trash/keeper.py keep_items, _holds_already); the local target does
(LocalTrash._keep_in_put), S3's conditional put does not (conditional.put_keeping keeps
whatever the HEAD after a 412 finds). Real SeaweedFS; the local target as the reference.
A failing test is a finding for the lead."""

from __future__ import annotations

import os

import pytest

from mirrord.trash.model import stamp_of
from tests.targets.conftest import make_local, make_s3


@pytest.fixture(params=["local", "s3"])
def target(request, tmp_path):
    t = make_local(tmp_path) if request.param == "local" else \
        make_s3(request.getfixturevalue("seaweedfs"))
    t.open()
    try:
        yield t
    finally:
        t.close()


def test_putting_the_same_version_twice_keeps_nothing(target, tmp_path):
    src = tmp_path / "page.txt"
    src.write_bytes(b"one version of the page\n")
    ns = 1_700_000_000_123_456_789
    os.utime(src, ns=(ns, ns))
    st = src.stat()
    for when in (1_800_000_000.25, 1_800_000_001.5):        # two changes, two stamps
        target.put("page.txt", str(src), size=st.st_size, mtime=ns / 1e9, mtime_ns=ns,
                   keep_stamp=stamp_of(when)) if target.features.keep_by_condition else \
            target.put("page.txt", str(src), size=st.st_size, mtime=ns / 1e9, mtime_ns=ns)
    kept = list(target.trash_list())
    assert kept == [], [(k.stamp, k.why, k.size) for k in kept]
