"""failover.log stays one JSON object per line: a write that fails or is short part-way
(ENOSPC) is undone, and a line is started on a fresh line when the file ends in a fragment
(an older version's or a crash's). Before, the fragment stayed and the next run's line
was glued onto it: neither parsed."""

from __future__ import annotations

import errno
import json
import os

import pytest

from mirrord.failover import result
from mirrord.failover.result import LOG_NAME, Run, append_log


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def log(tmp_path):
    append_log(tmp_path, Run("failover", dry_run=True))
    return tmp_path / LOG_NAME


@pytest.mark.parametrize("how", ["short", "enospc"])
def test_a_torn_write_leaves_the_log_as_it_was(tmp_path, log, monkeypatch, how):
    before = log.read_bytes()
    real = os.write

    def torn(fd, data):
        n = real(fd, data[:len(data) // 2])      # half the line reached the file
        if how == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        return n
    monkeypatch.setattr(result.os, "write", torn)
    with pytest.raises(OSError):
        append_log(tmp_path, Run("switchover", dry_run=True))
    monkeypatch.undo()
    assert log.read_bytes() == before
    append_log(tmp_path, Run("failback", dry_run=True))
    assert [r["command"] for r in _lines(log)] == ["failover", "failback"]


def test_a_fragment_at_the_end_gets_the_next_record_on_its_own_line(tmp_path, log):
    with open(log, "ab") as fh:
        fh.write(b'{"command": "switchover", "outc')     # an older version's torn line
    append_log(tmp_path, Run("failback", dry_run=True))
    lines = log.read_text().splitlines()
    assert lines[1] == '{"command": "switchover", "outc'
    assert json.loads(lines[0])["command"] == "failover"
    assert json.loads(lines[2])["command"] == "failback"
    assert log.read_bytes().endswith(b"\n")
