"""Found by a breaker: `mirrord undelete --to-source` checks the source file for "someone's newer work"
BEFORE fetching the kept bytes, then renames its temp file over the path AFTER the fetch
(mirrord/trash/restore.py restore_to_source -> _write_beneath: os.replace). A newer upload
placed at the path while a big kept file is being fetched is overwritten silently (exit 0,
`written:`), although README step 4 promises: "A file in the source that differs and was
modified or put there after the change the version was kept at ... is someone's newer
work: it is refused (exit 1 ...) unless --force". With the daemon stopped (or before it
ships the upload) the newer upload is lost everywhere.

Now what stands there is looked at again once the fetch is done, and judged again when it
changed (mirrord/trash/restore.py, _write_beneath).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.e2e.helpers import MIRRORD, Mirrord

NEWER = b"the user's newer upload\n"


def test_newer_upload_during_the_fetch_is_not_clobbered(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    cfg = tmp_path / "mirrord.ini"
    cfg.write_text("""
[mirrord]
state_dir = ./state
workers = 2
heartbeat_interval = 200ms

[source:uploads]
path = ./src
targets = local

[target:local]
type = local
path = ./mirror
keep_deleted = 7d
""")
    big = src / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(300):
            fh.write(os.urandom(1 << 20))
    daemon = Mirrord(cfg, tmp_path / "mirrord.log")
    daemon.start()
    try:
        deadline = time.monotonic() + 120
        while not ((tmp_path / "mirror" / "big.bin").exists()
                   and (tmp_path / "mirror" / "big.bin").stat().st_size == big.stat().st_size):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1)
        big.unlink()
        while (tmp_path / "mirror" / "big.bin").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        assert daemon.stop() == 0
    proc = subprocess.Popen([MIRRORD, "-c", str(cfg), "undelete", "--to-source", "big.bin"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".mirrord-undelete-") for p in src.iterdir()):
        assert proc.poll() is None, "undelete finished before its fetch could be seen"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    part = src / "big.bin.part"          # the web app's upload lands: write, rename
    part.write_bytes(NEWER)
    os.replace(part, big)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and b"placed there while the kept version was fetched" in out, (
        out + err)
    assert not [p for p in src.iterdir() if p.name.startswith(".mirrord-undelete-")]
    assert big.read_bytes() == NEWER, (
        f"the newer upload placed during the fetch was overwritten; undelete exit "
        f"{proc.returncode}\n{out.decode()}{err.decode()}")
