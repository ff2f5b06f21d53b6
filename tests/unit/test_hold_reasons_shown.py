"""A source's deletes are held for one of two reasons: a mass-change alarm, or the daemon's
comparison finding more deletes than [reconcile] max_delete allows (daemon_roots). Every
place that shows a hold says which, from the reason the hold recorded.

Before: `mirrord status` printed "alarm: N deletes held" and `mirrord reconcile` refused
with "held after a mass-change alarm" for a hold no alarm had set, and the operator went
looking for an alarm that never fired."""

from __future__ import annotations

import time

import pytest

from mirrord.cli.status import collect, render
from mirrord.journal import Change, Journal
from mirrord.reconcile.deletes import held_refusal
from tests.unit.test_status_trash import _config

CAPPED = ("the source root lacked at start 5000 shipped paths, more than [reconcile] "
          "max_delete allows on mirror: a wrong file system?")
ALARM = "mass-change alarm: 1500 deletes or overwrites within 60s (alarm_deletes = 1000)"


@pytest.mark.parametrize("reason", [CAPPED, ALARM])
def test_status_and_reconcile_name_the_hold_by_its_reason(tmp_path, reason):
    cfg = _config(tmp_path)
    j = Journal(cfg.mirrord.journal_path, {"up": ("mirror",)})
    try:
        j.enqueue([Change("up", "gone.jpg", "delete", time=time.time())])
        assert j.hold_deletes("up", reason=reason)
        assert j.hold_reasons() == {"up": reason}
    finally:
        j.close()
    text = render(collect(cfg))
    (line,) = [ln for ln in text.splitlines() if "deletes held" in ln]
    assert line.startswith("  source up: 1 deletes held since "), line
    assert f"({reason})" in line and "mirrord resume-deletes --source up" in line
    assert ("alarm" in line) == (reason is ALARM), line
    refusal = held_refusal(cfg.mirrord.journal_path, "up", "mirror", 3)
    assert refusal == (f"deletes of source 'up' are held ({reason}; mirrord resume-deletes "
                       f"lets them go): not deleting 3 extra entries on mirror")


def test_no_hold_no_refusal(tmp_path):
    cfg = _config(tmp_path)
    Journal(cfg.mirrord.journal_path, {"up": ("mirror",)}).close()
    assert held_refusal(cfg.mirrord.journal_path, "up", "mirror", 3) is None
    assert "deletes held" not in render(collect(cfg))


def test_a_hold_with_nothing_waiting_says_so_instead_of_ship_them(tmp_path):
    """An alarm fired by overwrites alone holds the source's deletes with none waiting:
    status said "0 deletes held ...; ship them: mirrord resume-deletes", naming nothing
    to ship (a review, helper-155). It says none wait, that new deletes will, and how to
    lift the hold."""
    cfg = _config(tmp_path)
    j = Journal(cfg.mirrord.journal_path, {"up": ("mirror",)})
    try:
        assert j.hold_deletes("up", reason=ALARM)
    finally:
        j.close()
    (line,) = [ln for ln in render(collect(cfg)).splitlines() if "deletes held" in ln]
    assert line.startswith("  source up: 0 deletes held since "), line
    assert "ship them" not in line and "none waiting" in line, line
    assert line.endswith("lift the hold: mirrord resume-deletes --source up"), line
