"""Text `mirrord status`: every free-text value (an error, a reason) and every path stays
on its line of the table.

Before: a target's last error holding an ssh or rsync stderr of several lines printed
those lines raw, so one error read as rows of their own (a path with a newline too).
--json keeps every value as it is."""

from __future__ import annotations

import time

from mirrord.cli.status import collect, render
from mirrord.journal import Journal
from tests.unit.test_status_trash import _config

TWO_LINES = "rsync: connection unexpectedly closed\nrsync error: error in rsync protocol"


def _doc(tmp_path) -> dict:
    cfg = _config(tmp_path)
    Journal(cfg.mirrord.journal_path, {"up": ("mirror",)}).close()
    doc = collect(cfg)
    now = time.time()
    doc["daemon_pid"] = 1
    doc["daemon"] = {"updated": now, "sources": {"up": {
        "root_lost": "the source root was unmounted\nsecond line",
        "unwatched_directories": 1, "unwatched_paths": ["site\nnew"]}}}
    doc["sources"] = {"up": {"lost_mounts": ["mnt\npoint"]}}
    t = doc["targets"]["mirror"]
    t.update(state="degraded", state_reason=TWO_LINES, last_error=TWO_LINES,
             last_error_at=now, last_shipped_path="a\nb.jpg", last_shipped_at=now,
             trash={"files": 1, "bytes": 3, "at": now, "error": TWO_LINES})
    return doc


def test_every_value_stays_on_its_line(tmp_path):
    lines = render(_doc(tmp_path)).splitlines()
    starts = ("daemon:", "  watched", "  source up:", "TARGET", "mirror ", " " * 12)
    assert all(line.startswith(starts) for line in lines), lines
    text = "\n".join(lines)
    assert "rsync: connection unexpectedly closed rsync error: error in rsync protocol" in text
    assert "a\\nb.jpg" in text and "site\\nnew" in text and "mnt\\npoint" in text
    assert "was unmounted second line" in text


def test_a_watcher_reading_behind_has_its_line(tmp_path):
    """`events_unread_for` over a second: status says the watcher reads behind, since
    pending 0 then does not mean caught up (mirrord.watch.read_lag); none at 0."""
    doc = _doc(tmp_path)
    doc["daemon"]["sources"]["up"] = {"events_unread_for": 42.4}
    text = render(doc)
    assert ("source up: the watcher has not emptied the kernel's event queue for 42s"
            in text), text
    doc["daemon"]["sources"]["up"] = {"events_unread_for": 0.0}
    assert "event queue" not in render(doc)
