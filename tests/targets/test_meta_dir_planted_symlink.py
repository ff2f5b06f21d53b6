"""A symlink planted at the mirror's own area (`<root>/.mirrord`, or `.mirrord/tmp`,
`.mirrord/rsync-tmp`) leads nothing outside the root, on the targets whose root is a
directory (local, rsync through a real sshd).

Shape: `.mirrord` is a child of the root like any other, so whoever can plant `ln -> /etc`
below the root (an operator, a restore gone wrong, the web app after a failover: the threat
tests/targets/test_planted_symlinks.py answers) can plant `.mirrord -> /some/dir` or
`.mirrord/tmp -> /some/dir` just as well. open() then sweeps "what an interrupted put left"
in the temp area by path, following the link: every file and directory in the outside
directory is removed. The heartbeat (write_meta) and every put's temp file are written
outside too; with `.mirrord/trash` planted, keep_deleted's keeps write there; with
`.mirrord/heartbeat.json` planted, the local read_meta returns the outside file's bytes.

What goes wrong (found by trying it): after open(), what the outside directory held under
the temp area's name is gone (outside/tmp/* for local, outside/rsync-tmp/* for rsync, with
`.mirrord -> outside`; everything in it with `.mirrord/tmp -> outside/tmp`), and
outside/heartbeat.json and a lock file were written. `.mirrord/rsync-tmp -> elsewhere`
alone holds on rsync (find does not follow its starting point).

Diagnosis: the by-descriptor walks of today's change cover user paths only; mirrord's own
area is still reached by path. Local: mirrord/targets/local_stage.py Staging.prepare /
Staging.sweep (os.listdir + unlink/rmtree of `<root>/.mirrord/tmp/*`), Staging._temp
(mkstemp in it), LocalTarget.write_meta / read_meta (mirrord/targets/local.py), and
LocalTrash._trash_parent / _prune (os.makedirs / os.rmdir by path,
mirrord/targets/local_trash.py). Rsync: remote.prepare_script's
`find <root>/.mirrord/rsync-tmp -mindepth 1 -delete` and `rm -f -- <root>/.mirrord/.meta.*`
(mirrord/targets/rsync/remote.py): find does not follow its starting point, but the
kernel follows the `.mirrord` component on the way to it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from mirrord.errors import PermanentError, RetryableError

from .conftest import make_target
from .test_conformance import put
from .test_planted_symlinks import root_of, snapshot


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory outside every root, laid out so that both temp areas' names exist."""
    d = tmp_path / "outside"
    for sub in ("tmp", "rsync-tmp"):
        (d / sub / "keepme").mkdir(parents=True)
        (d / sub / "victim").write_bytes(b"must stay")
    (d / "victim").write_bytes(b"must stay")
    return d


@pytest.mark.parametrize(("kind", "at"), [
    ("local", ".mirrord"), ("local", ".mirrord/tmp"),              # Staging's temp area
    ("rsync", ".mirrord"), ("rsync", ".mirrord/rsync-tmp"),        # remote.RSYNC_TMP
])
def test_open_sweeps_nothing_through_a_symlinked_meta_dir(kind, at, request, tmp_path, outside):
    t = make_target(kind, request, tmp_path)
    root = root_of(t)
    root.mkdir(parents=True, exist_ok=True)
    link = root / at
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside / link.name if at != ".mirrord" else outside, link)
    before = snapshot(outside)
    t.open()
    try:
        put(t, tmp_path, "f", b"inside")
        t.write_meta("heartbeat.json", b"{}")
        assert t.read("f") == b"inside"   # the target did its work...
    finally:
        t.close()
    assert snapshot(outside) == before   # ...and nothing outside was removed or written


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_a_keep_makes_nothing_through_a_symlinked_trash(kind, request, tmp_path, outside):
    """`.mirrord/trash -> /elsewhere`: a put with keep_deleted's keep_stamp over a file of
    the mirror's. Local: LocalTrash._trash_parent (mirrord/targets/local_trash.py) makes
    `<stamp>.overwritten/` with os.makedirs by path, i.e. in the outside directory, before
    open_dir_beneath refuses the link (ELOOP: PermanentError, so the put fails for good too).
    Rsync: keep_script.KEEP_BODY (`mkdir -p -- "${d%/*}"`, then `ln -- "$p" "$d"` by path)
    links the mirror's file into the outside directory and the put goes on."""
    t = make_target(kind, request, tmp_path)
    t.open()
    try:
        put(t, tmp_path, "f", b"old")
        os.symlink(outside, root_of(t) / ".mirrord" / "trash")
        before = snapshot(outside)
        src = tmp_path / "new"
        src.write_bytes(b"new")
        # refusing to keep (an error) is acceptable; writing outside is not
        with contextlib.suppress(PermanentError, RetryableError):
            t.put("f", str(src), size=3, mtime=1_600_000_000.0,
                  keep_stamp="20260101T000000.000000Z")
    finally:
        t.close()
    assert snapshot(outside) == before


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_read_meta_does_not_follow_a_planted_symlink(kind, request, tmp_path, outside):
    """`.mirrord/heartbeat.json -> /elsewhere/victim`: read_meta (what `mirrord failover`
    and status read) must not return an outside file's bytes. Rsync asks nolink first
    (RsyncTarget._cat); local reads by path (LocalTarget.read_meta: Path.read_bytes)."""
    t = make_target(kind, request, tmp_path)
    t.open()
    try:
        os.symlink(outside / "victim", root_of(t) / ".mirrord" / "heartbeat.json")
        assert t.read_meta("heartbeat.json") != b"must stay"
    finally:
        t.close()
