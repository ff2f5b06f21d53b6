"""The mass-change alarm also sees a mass delete made while the daemon was stopped.

A maintenance script is often run with the services stopped (an upgrade, a deploy): an
`rm -rf` then reaches the targets through the catch-up at the next start, not through the
live stream. Before, catch-up deletes were never counted, so `pause_on_alarm = yes` held
nothing and every file went at once on every target. Now the catch-up's deletes count
like live ones (its rewrites do not: it cannot tell a touch from a rewrite)."""

from __future__ import annotations

import shutil

from tests.e2e.helpers import wait_converged
from tests.e2e.test_alarm_daemon import FILES, THRESHOLD, _batch_files, poll, setup, shipped_batch  # noqa: F401


def test_an_rm_rf_while_stopped_fires_the_alarm_at_start_and_holds_the_deletes(setup):  # noqa: F811
    tmp, daemon, target = setup
    src = tmp / "src"
    shipped_batch(src, daemon, target)

    shutil.rmtree(src / "batch")                 # the mistake, made while mirrord was down
    (src / "keep.txt").chmod(0o600)             # a chmod while down: proposed, never counted
    daemon.start()

    def held():
        doc = daemon.status()["sources"]["uploads"]
        h = doc.get("deletes_held")
        return doc if h and h["waiting"] >= FILES else None

    doc = poll("catch-up deletes held", held, daemon)
    assert doc["alarm"] == "alarm"
    (src / "new.txt").write_bytes(b"created after start")
    poll("a create goes on", lambda: target.read("new.txt") == b"created after start", daemon)
    assert len(_batch_files(target)) == FILES     # nothing of the rm -rf reached the target
    daemon.cli("resume-deletes", "--source", "uploads")
    wait_converged(src, target)
    assert daemon.log.read_text().count("mass-change alarm: too many") == 1
