"""A name a directory-only pattern excludes (`exclude = temp/`) that flips from a shipped
file to a directory leaves nothing at that name on any target: the real `mirrord run`,
either watcher, a local directory, S3 and a mirror host, no reconcile after the start's.

A breaker: `rm temp; mkdir temp; echo > temp/in` left an empty directory `temp` on the
local and rsync targets for good, status in_sync, and a reconcile never looks at an
excluded name to find it. The op recorded for the file found a directory at the source
and made it. Shapes: remove and mkdir, a directory renamed onto the freed name, and
renameat2(RENAME_EXCHANGE) of the file with a directory, in either order."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.helpers import write_config
from tests.e2e.test_exact_stream import start, write
from tests.e2e.test_exchange_in_flight import exchange
from tests.reliability.conftest import Env


@pytest.fixture(params=["inotify", "fanotify"])
def env(request, tmp_path, seaweedfs, sshd):
    cfg = write_config(tmp_path, seaweedfs, sshd, exclude="temp/")
    text = cfg.read_text().replace("[source:uploads]\n",
                                   f"[source:uploads]\nwatcher = {request.param}\n")
    cfg.write_text(text + "\n[reconcile]\nevery = off\n")
    e = Env(tmp_path, cfg)
    try:
        yield e
    finally:
        e.close()


def test_a_shipped_file_turned_into_an_excluded_directory_leaves_nothing(env):
    src = env.src

    def excluded(path: str) -> bool:   # temp/ excludes the name only while it is a directory
        return (path == "temp" or path.startswith("temp/")) and (src / "temp").is_dir()

    def assert_exact() -> None:
        env.assert_exact(passes_allowed=True, excludes=excluded)

    write(src / "temp", b"a file called temp")
    start(env)
    assert_exact()
    os.unlink(src / "temp")                          # rm temp; mkdir temp; echo > temp/in
    (src / "temp").mkdir()
    write(src / "temp" / "in", b"in")
    assert_exact()
    shutil.rmtree(src / "temp")                      # a file again, then a directory
    write(src / "temp", b"the file is back")          # renamed onto the freed name
    assert_exact()
    (src / "d").mkdir()
    write(src / "d" / "x", b"x")
    os.unlink(src / "temp")
    os.rename(src / "d", src / "temp")
    assert_exact()
    shutil.rmtree(src / "temp")
    write(src / "temp", b"exchanged")                 # exchanged with a directory: the
    (src / "e").mkdir()                               # file named first, then second
    write(src / "e" / "y", b"y")
    assert_exact()
    exchange(src / "temp", src / "e")
    assert_exact()
    exchange(src / "e", src / "temp")
    assert_exact()
