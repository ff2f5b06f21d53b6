"""An outer source's own files below an inner source's dest, on a shared target.

Found by a breaker: source `a` (dest empty) holding its own directory media/, source `b`
with `dest = media`, one target. check-config accepts it (the README allows nested
dests). Every reconcile shipped a/media/from_a.jpg and b's pass then deleted it as an
extra, each saying "in sync", exit 0; live, a's writes landed in b's area and a's
delete of media/same.jpg removed b's file of that name.

The inner source owns its area (mirrord.nested.claimed_by): a's changes there are
refused (a permanent error naming both sources), a's rename of a file out of it is sent
as a new file (the old name is b's), and a reconcile reports a's entries there as errors
(exit 1, "NOT in sync") without touching b's files. The real `mirrord run`, on a local
directory and on S3 (SeaweedFS), live only (no pass at start, none scheduled).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import Mirrord
from tests.reliability.conftest import poll, target_files
from mirrord import config as config_mod, targets as target_registry


def _config(tmp: Path, kind: str, seaweedfs) -> Path:
    if kind == "local":
        target = f"type = local\npath = {tmp / 'mirror'}\n"
    else:
        target = (f"type = s3\nbucket = {seaweedfs.new_bucket()}\nprefix = m/\n"
                  f"endpoint_url = {seaweedfs.endpoint_url}\nregion = {seaweedfs.region}\n"
                  f"access_key_id = {seaweedfs.access_key}\n"
                  f"secret_access_key = {seaweedfs.secret_key}\naddressing_style = path\n")
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = {tmp / 'state'}
workers = 2
heartbeat_interval = 200ms

[source:a]
path = {tmp / 'a'}
targets = t

[source:b]
path = {tmp / 'b'}
targets = t
dest = media

[target:t]
{target}
[reconcile]
at_start = no
every = off
""")
    cfg.chmod(0o600)
    return cfg


def _files(cfg: Path) -> dict[str, bytes]:
    tcfg = config_mod.load(cfg).targets["t"]
    target = target_registry.create(tcfg)
    target.open(readonly=True)
    try:
        return target_files(target)
    finally:
        target.close()



@pytest.mark.parametrize("kind", ["local", "s3"])
def test_the_inner_source_owns_its_area(tmp_path, kind, request):
    seaweedfs = request.getfixturevalue("seaweedfs") if kind == "s3" else None
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "media").mkdir(parents=True)
    b.mkdir()
    (a / "top.jpg").write_bytes(b"a's top")
    (b / "from_b.jpg").write_bytes(b"b's own")
    (b / "same.jpg").write_bytes(b"b's same")
    cfg = _config(tmp_path, kind, seaweedfs)
    d = Mirrord(cfg, tmp_path / "mirrord.log")
    d.start()
    try:
        # the catch-up at start ships both sources' files; a's own media/ is empty yet
        poll(lambda: _files(cfg).get("media/same.jpg") == b"b's same", what="b's files shipped")
        (a / "media" / "live.jpg").write_bytes(b"a writes into b's area")
        (a / "media" / "same.jpg").write_bytes(b"a's same")     # b's file of that name
        (a / "media" / "same.jpg").unlink()                   # ... a's delete of it
        (a / "media" / "from_a.jpg").write_bytes(b"a's moved")
        (a / "media" / "from_a.jpg").rename(a / "moved.jpg")  # renamed out of b's area
        (a / "after.jpg").write_bytes(b"a's last")            # an ordinary change after
        poll(lambda: _files(cfg).get("after.jpg") == b"a's last", what="a's last change shipped")
        # what is left pending is the refused changes alone: failing, shown, never shipped
        poll(lambda: (lambda t: t["pending"] == t["failing"] >= 1)(d.status()["targets"]["t"]),
             what="nothing pending but the refused changes")
        files = _files(cfg)
        assert files.get("moved.jpg") == b"a's moved", files
        assert files.get("media/same.jpg") == b"b's same", files    # never a's delete of it
        assert files.get("media/from_b.jpg") == b"b's own", files
        assert "media/live.jpg" not in files and "media/from_a.jpg" not in files, files
        doc = d.status()
        text = json.dumps(doc["targets"]["t"])
        assert "area of [source:b]" in text, text   # the refusal is shown, not silent
    finally:
        assert d.stop() == 0
    (a / "media" / "again.jpg").write_bytes(b"a again")
    res = d.cli("reconcile", check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "[source:a]" in out and "lie below 'media'" in out and "NOT in sync" in out, out
    files = _files(cfg)
    assert files.get("media/same.jpg") == b"b's same" and files.get("media/from_b.jpg") == b"b's own"
    assert not any(p in files for p in ("media/live.jpg", "media/again.jpg")), files
    dry = d.cli("reconcile", "--dry-run", check=False)
    assert dry.returncode == 1 and "lie below 'media'" in dry.stdout + dry.stderr
