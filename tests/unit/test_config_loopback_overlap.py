"""An rsync target on this very machine (a loopback host) whose path overlaps a source is
refused like a local target's (mirrord/config/load.py, _here): its reconcile deletes as
extra what its own sources do not hold, and with `path` inside a source every file it
wrote was seen, shipped again and written again, without end."""

from __future__ import annotations

import pytest

from mirrord.config import load
from tests.unit.test_config import has, problems, write

RSYNC = """
[source:up]
path = {src}
targets = host

[target:host]
type = rsync
host = {host}
path = {path}
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "localhost", "LocalHost.",
                                  "mirror.localhost"])
@pytest.mark.parametrize("where", ["inside", "equal", "around"])
def test_an_rsync_target_on_a_loopback_host_overlapping_a_source_is_refused(tmp_path, host, where):
    src = tmp_path / "src"
    src.mkdir()
    path = {"inside": src / "mirror", "equal": src, "around": tmp_path}[where]
    found = problems(write(tmp_path, RSYNC.format(src=src, host=host, path=path)))
    assert has(found, "target:host", "path", f"overlaps the source {src}"), found


@pytest.mark.parametrize("host", ["mirror.example.org", "10.0.0.7", "::2", "localhost-2"])
def test_an_rsync_target_elsewhere_at_the_same_path_loads(tmp_path, host):
    """The same path on another host is another place."""
    src = tmp_path / "src"
    src.mkdir()
    cfg = load(write(tmp_path, RSYNC.format(src=src, host=host, path=src)))
    assert cfg.targets["host"].rsync.path == str(src)
