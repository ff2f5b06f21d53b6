"""What `mirrord run` has imported when its sources are watched (issue 18: time to watching).

The daemon watches first and imports the rest after (mirrord/cli/run.py): every module
loaded before the first watch delays it. Each case runs the real entry point in a child
interpreter, on the real kernel (fanotify needs root: CI runs as root), and stops it at
the `msg=watching` log line to read sys.modules there.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# Run main() until the first `msg=watching` record, then print the loaded modules.
CHILD = """
import logging, sys
class Watching(BaseException):
    pass
handle = logging.Logger.handle
def stop_at_watching(self, record):
    if str(record.msg).startswith("msg=watching"):
        raise Watching
    return handle(self, record)
logging.Logger.handle = stop_at_watching
sys.argv = ["mirrord", "-c", sys.argv[1], "run"]
from mirrord.cli.main import main
try:
    main()
except Watching:
    print(" ".join(sorted(sys.modules)))
else:
    sys.exit("never watching")
"""

# Needed only once the daemon runs: the journal, the shipper, the targets and their SDKs,
# the metrics server, reconcile.
# A package stands for its submodules too; mirrord.metrics for its satellites (metrics_*).
NEVER_BEFORE_WATCHING = ("mirrord.daemon", "mirrord.daemon_lifecycle", "mirrord.journal",
                         "mirrord.targets", "mirrord.shipper", "mirrord.pipeline",
                         "mirrord.reconcile", "mirrord.metrics", "sqlite3", "boto3", "botocore",
                         "prometheus_client", "psycopg", "schedule", "awscrt")


def too_early(loaded: set[str]) -> set[str]:
    return {m for m in loaded for late in NEVER_BEFORE_WATCHING
            if m == late or m.startswith(late + ".")
            or (late == "mirrord.metrics" and m.startswith("mirrord.metrics_"))}


def loaded_at_watching(tmp_path, *, watcher: str, exclude: str = "") -> set[str]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a").mkdir(exist_ok=True)
    cfg = tmp_path / "mirrord.ini"
    cfg.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n"
                   f"[source:s]\npath = {src}\ntargets = t\nwatcher = {watcher}\n"
                   + (f"exclude = {exclude}\n" if exclude else "")
                   + f"[target:t]\ntype = local\npath = {tmp_path / 'dst'}\n")
    out = subprocess.run([sys.executable, "-c", CHILD, str(cfg)], capture_output=True, check=False,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(out.stdout.split())


@pytest.mark.parametrize("watcher", ["inotify", "fanotify"])
def test_nothing_the_daemon_needs_later_is_imported_before_the_watch(tmp_path, watcher):
    loaded = loaded_at_watching(tmp_path, watcher=watcher)
    assert "mirrord.watch.select" in loaded     # the probe saw a real start
    assert not too_early(loaded)


def test_only_the_chosen_backend_is_imported(tmp_path):
    fan = loaded_at_watching(tmp_path, watcher="fanotify")
    assert "mirrord.watch.fanotify" in fan
    assert "mirrord.watch.inotify" not in fan and "inotify_simple" not in fan
    ino = loaded_at_watching(tmp_path, watcher="inotify")
    assert "mirrord.watch.inotify" in ino
    assert not {m for m in ino if m.startswith("mirrord.watch.fanotify")}


def test_libc_is_found_without_a_child_process(tmp_path):
    """ctypes.util.find_library runs `ldconfig -p` in a child: fanotify_sys does not ask it."""
    assert "ctypes.util" not in loaded_at_watching(tmp_path, watcher="fanotify")


def test_pathspec_is_imported_only_for_a_source_with_excludes(tmp_path):
    assert "pathspec" not in loaded_at_watching(tmp_path, watcher="fanotify")
    assert "pathspec" in loaded_at_watching(tmp_path, watcher="fanotify", exclude="*.tmp")
