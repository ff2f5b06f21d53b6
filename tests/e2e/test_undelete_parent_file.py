"""Found by a breaker: `mirrord undelete PATH` (onto the targets, no --to-source) of a file kept from a
directory that has since become a FILE at the source (rm -rf tree; echo > tree) replaces
the target's file `tree` by a directory without keeping it first.

README ("Restoring onto the targets only"): "what stands at the path is kept first, so an
undelete can be undone the same way". Here the mirrored file `tree` vanishes from the
target and from its trash (after a failover, when the mirror serves, it is lost).

Now each parent is kept first too (mirrord/trash/restore.py, restore_on_target).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import Mirrord

NEW = b"now a file, the newest upload\n"


def _config(tmp: Path, kind: str, sshd) -> tuple[Path, Path]:
    (tmp / "src").mkdir()
    if kind == "local":
        root = tmp / "mirror"
        target = f"type = local\npath = {root}\n"
    else:
        root = sshd.new_root()
        target = (f"type = rsync\nhost = {sshd.host}\nport = {sshd.port}\nuser = {sshd.user}\n"
                  f"path = {root}\nssh_key = {sshd.key_path}\nknown_hosts = {sshd.known_hosts}\n"
                  f"strict_host_key_checking = yes\n")
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = ./state
workers = 2
heartbeat_interval = 200ms

[source:uploads]
path = ./src
targets = t

[target:t]
{target}keep_deleted = 7d
""")
    return cfg, Path(root)


def _wait(check, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


@pytest.mark.parametrize("kind", ["local", "rsync"])
def test_target_undelete_keeps_the_file_standing_where_a_parent_dir_goes(tmp_path, kind, request):
    sshd = request.getfixturevalue("sshd") if kind == "rsync" else None
    cfg, root = _config(tmp_path, kind, sshd)
    src = tmp_path / "src"
    (src / "tree").mkdir()
    (src / "tree" / "a.bin").write_bytes(b"old kept bytes")
    d = Mirrord(cfg, tmp_path / "mirrord.log")
    d.start()
    try:
        _wait(lambda: (root / "tree" / "a.bin").is_file(), "tree/a.bin mirrored")
        shutil.rmtree(src / "tree")
        (src / "tree").write_bytes(NEW)
        _wait(lambda: (root / "tree").is_file() and (root / "tree").read_bytes() == NEW,
              "the file tree mirrored over the removed directory")
        time.sleep(1)
    finally:
        assert d.stop() == 0
    res = d.cli("undelete", "tree/a.bin", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (root / "tree" / "a.bin").read_bytes() == b"old kept bytes"
    # what stood in the way (the mirrored file `tree`) must have been kept first
    doc = json.loads(d.cli("trash", "--json").stdout)
    text = json.dumps(doc)
    kept_bytes = [p.read_bytes() for p in (root / ".mirrord" / "trash").rglob("*") if p.is_file()]
    assert NEW in kept_bytes, (
        f"the target's file 'tree' ({NEW!r}) was replaced by a directory and not kept: "
        f"trash holds {kept_bytes!r}\n{text}")
