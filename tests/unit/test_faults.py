"""mirrord.faults: the crash tests' fault point holds a worker only when told to, and
lets it go when the rule file is removed."""

from __future__ import annotations

import threading
import time

from mirrord import faults


def _poll(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_off_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.setattr(faults, "FAULT_DIR", "")
    (tmp_path / "shipped").write_text("* *\n")
    faults.point("shipped", "t", ["a"])   # returns at once: nothing is read
    assert not (tmp_path / "shipped.reached").exists()


def test_a_match_is_held_until_the_rule_goes(monkeypatch, tmp_path):
    monkeypatch.setattr(faults, "FAULT_DIR", str(tmp_path))
    rule = tmp_path / "shipped"
    rule.write_text("disk up/*\n")
    faults.point("shipped", "disk", ["other.jpg"])      # no match: not held
    faults.point("shipped", "s3", ["up/x.jpg"])         # another target: not held
    assert not (tmp_path / "shipped.reached").exists()
    worker = threading.Thread(target=faults.point, args=("shipped", "disk", ["up/x.jpg", "z"]))
    worker.start()
    reached = tmp_path / "shipped.reached"
    _poll(lambda: reached.exists() and reached.read_text() == "disk up/x.jpg\n", "the hold")
    assert worker.is_alive()
    rule.unlink()
    worker.join(timeout=10)
    assert not worker.is_alive()
