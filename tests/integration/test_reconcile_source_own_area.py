"""A source holding a `.mirrord/` of its own (a former mirror made a source: failback),
mirrored below a non-empty `dest`.

Only `.mirrord/` at the target ROOT is mirrord's (heartbeat, staging, trash). The shipper
sends the source's `.mirrord/x` to `dest/.mirrord/x`, but reconcile's listing skipped
`.mirrord/` relative to the dest: every pass found it missing and sent it again, and an
extra there was never deleted. Real targets: local, rsync over the test sshd, S3 on the
test SeaweedFS.
"""

from __future__ import annotations

import pytest

from tests.integration.test_reconcile_targets import KINDS, make_site


@pytest.mark.parametrize("kind", KINDS)
def test_a_source_s_own_area_below_a_dest_is_data_sent_once(kind, tmp_path, request):
    site = make_site(kind, tmp_path, request)
    site.ini.write_text(site.ini.read_text().replace("targets = t\n", "targets = t\ndest = site\n"))
    site.write("a/x", b"x")
    site.write(".mirrord/heartbeat.json", b'{"from": "the old primary"}')
    site.write(".mirrord/trash/old/y", b"kept there once")
    site.remote.write("site/.mirrord/stale", b"deleted at the source")
    rc, t = site.reconcile()
    assert rc == 0 and not t["errors"], t
    files = site.target_files()
    assert files == {"site/a/x": b"x", "site/.mirrord/heartbeat.json": b'{"from": "the old primary"}',
                     "site/.mirrord/trash/old/y": b"kept there once"}, files
    rc, t = site.reconcile("--dry-run")
    assert rc == 0 and (t["missing"], t["changed"], t["extra"]) == (0, 0, 0), t
    assert t["would_send"] == [] and t["would_delete"] == [], t
    rc, t = site.reconcile()
    assert rc == 0 and t["bytes"] == 0 and t["deleted"] == 0, t
