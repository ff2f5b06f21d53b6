"""100,000 small files in 1,000 directories against the local target: an in-sync pass sends
nothing, and 1% drift is found exactly and repaired. Nothing is timed here (see bench/)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_reconcile_targets import Remote, Site

FILES, DIRS = 100_000, 1_000


def rel(i: int) -> str:
    return f"d{i % DIRS:03d}/f{i:06d}.dat"


@pytest.fixture(scope="module")
def big_site(tmp_path_factory) -> Site:
    base = tmp_path_factory.mktemp("scale")
    src, mirror = base / "src", base / "mirror"
    for d in range(DIRS):
        (src / f"d{d:03d}").mkdir(parents=True)
    payload = b"x" * 100
    for i in range(FILES):
        fd = os.open(src / rel(i), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, payload + str(i).encode())
        os.close(fd)
    mirror.mkdir()
    subprocess.run(["cp", "-a", f"{src}/.", str(mirror)], check=True)  # keeps ns mtimes
    return Site("local", base, f"type = local\npath = {mirror}\nfsync = no\nworkers = 4\n",
                Remote("local", root=mirror))


def test_in_sync_tree_of_100k_files_sends_nothing(big_site):
    rc, t = big_site.reconcile()
    assert rc == 0, t
    assert t["compared"] == FILES
    assert (t["missing"], t["changed"], t["extra"], t["deleted"], t["bytes"]) == (0, 0, 0, 0, 0)


def test_one_percent_drift_is_found_exactly_and_repaired(big_site):
    src = big_site.src
    changed = [rel(i) for i in range(0, FILES, 250)]           # 400 rewritten at the source
    missing = [rel(i) for i in range(7, FILES, 331) if i % 250][:300]   # 300 lost on it
    extra = [f"d{i % DIRS:03d}/stray{i:04d}.dat" for i in range(300)]   # 300 extra on it
    for path in changed:
        (src / path).write_bytes(b"changed " + path.encode())
    for path in missing:
        big_site.remote.remove(path)
    for path in extra:
        big_site.remote.write(path, b"stray")
    rc, t = big_site.reconcile()
    assert rc == 0, t
    assert (t["missing"], t["changed"], t["extra"], t["deleted"]) == (300, 400, 300, 300)
    mirror = Path(big_site.remote.root)
    for path in changed:
        assert (mirror / path).read_bytes() == b"changed " + path.encode()
    assert all((mirror / p).exists() for p in missing)
    assert not any((mirror / p).exists() for p in extra)
    rc, t = big_site.reconcile()
    assert rc == 0 and (t["missing"], t["changed"], t["extra"]) == (0, 0, 0)
