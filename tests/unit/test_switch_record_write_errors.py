"""A switch record that cannot be written (ENOSPC at the flip) names the record file and
[mirrord] state_dir; before, the flip step said only "[Errno 28] No space left on device"."""

from __future__ import annotations

import errno

import pytest

from mirrord.failover import switch_record
from mirrord.failover.switch_record import RECORD, Switch


def test_a_record_write_failure_names_the_file_and_the_key(tmp_path, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(switch_record, "atomic_write", full)
    with pytest.raises(OSError) as exc:
        Switch(tmp_path).save_record({"mode": "symlink"})
    assert exc.value.errno == errno.ENOSPC
    text = str(exc.value)
    assert str(tmp_path / RECORD) in text and "[mirrord] state_dir" in text, text
    assert "No space left on device" in text, text


def test_the_probe_leaves_nothing_behind(tmp_path):
    assert switch_record.dir_problem(tmp_path) == ""
    assert list(tmp_path.iterdir()) == []
    assert "No such file" in switch_record.dir_problem(tmp_path / "missing")
