"""`mirrord reconcile` never empties the targets from a source root that holds no file.

A mount point whose file system is not mounted (or a fresh, wrong one mounted: only
`lost+found/`), or one where a boot script re-created the upload tree's skeleton
(`thumb/`, `temp/`), holds directories but no file. The catch-up at start already treats
such a root as empty (no file while the state database says files were shipped); the
reconcile pass counted directories as source entries, so on targets that keep
directories (local, rsync) it deleted every file, up to max_delete. S3 keeps no
directories and was safe: it is checked here too, so the rule holds on every target."""

from __future__ import annotations

import json
import os
import shutil

from tests.e2e.helpers import Mirrord, open_targets, target_files, write_config

FILES = {"a.jpg": b"alpha", "2024/b.jpg": b"bravo", "2024/11/c.jpg": b"charlie"}


def test_a_root_with_only_empty_directories_deletes_nothing(tmp_path, seaweedfs, sshd):
    cfg = write_config(tmp_path, seaweedfs, sshd, exclude="")
    src = tmp_path / "src"
    for rel, data in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    m = Mirrord(cfg, tmp_path / "mirrord.log")
    m.cli("reconcile")
    targets = open_targets(cfg)
    try:
        want = dict(FILES)
        for t in targets.values():
            assert target_files(t) == want, t.name
        shutil.rmtree(src / "2024")           # the mount is gone: what is left is a skeleton
        (src / "a.jpg").unlink()
        for skeleton in ("lost+found", "thumb", "temp"):
            os.mkdir(src / skeleton)
        res = m.cli("reconcile", "--json", check=False)
        doc = json.loads(res.stdout)
        for name, t in targets.items():
            assert doc["targets"][name]["deleted"] == 0, (name, doc["targets"][name])
            assert target_files(t) == want, t.name
            assert "empty" in json.dumps(doc["targets"][name]), doc["targets"][name]
        assert res.returncode != 0        # not in sync, and said so
    finally:
        for t in targets.values():
            t.close()
