"""`mirrord reconcile` when a target refuses every file of a directory for one cause.

A directory of the mirror made immutable (chattr +i: refused even to root, which chmod
does not stop) failed each put with an error naming mirrord's random staging file (local:
`.mirrord/tmp/tmpXXXX`; rsync: its --temp-dir names), so the summary's one line per cause
was one line per file. Now each error names its file, relative to the target, and the
cause, and the pass reports them as one line. Real targets: local, rsync over the test
sshd (S3 has no staging file a name could leak from).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.integration.test_reconcile_targets import make_site

STAGING = re.compile(r"\.mirrord/(rsync-)?tmp/\w|\.mirrord-stage-")


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_puts_refused_for_one_cause_are_one_line_naming_a_file(kind, tmp_path, request):
    site = make_site(kind, tmp_path, request)
    site.ini.write_text(site.ini.read_text().replace("targets = t\n", "targets = t\ndest = site\n"))
    for i in range(6):
        site.write(f"d/f{i}", b"data %d" % i)
    locked = site.remote.root / "site/d"
    locked.mkdir(parents=True)
    subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        rc, t = site.reconcile()
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert rc == 1 and t["missing"] == 6, t
    [line] = t["errors"]
    assert line.startswith("6 changes failed (first: put 'd/f"), line
    assert "Operation not permitted" in line and "'site/d/f" in line, line
    assert not STAGING.search(line), line
    rc, t = site.reconcile()
    assert rc == 0 and not t["errors"], t
    assert site.target_files() == {f"site/{p}": data for p, data in site.source_files().items()}
