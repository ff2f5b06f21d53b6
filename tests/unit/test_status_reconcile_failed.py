"""Text `mirrord status` says when the last reconcile pass failed, and how many errors it
had, as --json does (`errors`, `in_sync: false`).

Before: a pass whose listing failed showed "last reconcile 5s ago: compared 0, missing
0, ... bytes 0", no error and no "NOT in sync": it read as a clean pass.
"""

from __future__ import annotations

from mirrord.cli.status import collect, render
from mirrord.journal import Journal
from mirrord.reconcile.result import KEEP_ERRORS, PassSummary
from tests.unit.test_status_trash import _config


def _status_line(tmp_path, summary: PassSummary) -> tuple[str, dict]:
    cfg = _config(tmp_path)
    jr = Journal(cfg.mirrord.journal_path, {"up": ("mirror",)})
    try:
        summary.finish(0.1)
        jr.set_state("reconcile:mirror", summary.to_state())
    finally:
        jr.close()
    doc = collect(cfg)
    line = next(li for li in render(doc).splitlines() if "last reconcile" in li)
    return line, doc["targets"]["mirror"]["last_reconcile"]


def test_a_failed_listing_says_failed_with_its_error_count(tmp_path):
    s = PassSummary("mirror", reason="start")
    s.errors.append("listing failed: PermanentError: list: 403 (HTTP 403):\nForbidden")
    line, rec = _status_line(tmp_path, s)
    assert rec["in_sync"] is False and rec["errors"]
    assert "FAILED, 1 error, NOT in sync" in line, line
    assert "listing failed: PermanentError: list: 403 (HTTP 403): Forbidden" in line   # one line


def test_the_error_count_is_every_error_not_the_kept_few(tmp_path):
    s = PassSummary("mirror")
    s.errors.extend(f"x{i}: PermanentError: refused" for i in range(KEEP_ERRORS + 7))
    line, rec = _status_line(tmp_path, s)
    assert len(rec["errors"]) == KEEP_ERRORS
    assert f"FAILED, {KEEP_ERRORS + 7} errors" in line, line


def test_refused_deletes_say_not_in_sync(tmp_path):
    s = PassSummary("mirror", compared=3)
    s.refuse(2, "over max_delete")
    line, _ = _status_line(tmp_path, s)
    assert line.endswith("; NOT in sync") and "FAILED" not in line, line


def test_a_clean_pass_says_neither(tmp_path):
    line, rec = _status_line(tmp_path, PassSummary("mirror", compared=3))
    assert rec["in_sync"] is True
    assert "NOT in sync" not in line and "FAILED" not in line and "compared 3" in line, line
