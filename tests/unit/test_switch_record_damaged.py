"""A damaged switch record (state_dir/failover-appconfig.json) is taken as no record, with
one warning naming it, by both switches, in the plan (precheck, describe) and in the
flip back. A breaker: a `target` that was not base64 text (a number, "!!notbase64")
made `mirrord failback` and its dry run die with a traceback, the link left as it was."""

from __future__ import annotations

import json
import os

import pytest

from mirrord.failover import switch_record
from mirrord.failover.appconfig import RECORD, FlagFileSwitch
from tests.unit.test_failover_appconfig import etc, switch  # noqa: F401 (fixture)

DAMAGE = [("target", 5), ("target", "!!notbase64"), ("target", ["x"]), ("flipped_to", {}),
          ("mode", 1), ("link", None), ("perm", "0644"), ("perm", -1), ("uid", "root"),
          ("content", 3.5), ("written", "%%%")]


def damage(tmp_path, key, value) -> None:
    path = tmp_path / "state" / RECORD
    doc = json.loads(path.read_bytes())
    doc[key] = value
    path.write_text(json.dumps(doc))


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(switch_record, "_WARNED", set())


@pytest.mark.parametrize("key,value", DAMAGE)
def test_a_symlink_record_damaged_is_no_record_and_failback_goes_to_readwrite(
        etc, tmp_path, capsys, key, value):   # noqa: F811 (fixture)
    os.symlink(b"./readwrite.php", etc / "active.php")
    sw = switch(etc, tmp_path)
    assert sw.apply(True)[0] is True
    damage(tmp_path, key, value)
    checks = sw.precheck(False)                 # the dry run's plan
    assert all(c.ok for c in checks), checks
    sw.describe(False)
    assert sw.apply(False)[0] is True
    assert os.readlink(etc / "active.php") == str(etc / "readwrite.php")
    err = capsys.readouterr().err
    assert err.count(f"{RECORD} is damaged") == 1, err   # once, however often it is read


def test_a_record_that_is_not_json_or_not_an_object_is_no_record(etc, tmp_path, capsys):  # noqa: F811
    os.symlink(b"./readwrite.php", etc / "active.php")
    sw = switch(etc, tmp_path)
    for text in ("{not json", "[1, 2]", "null"):
        sw.apply(True)
        (tmp_path / "state" / RECORD).write_text(text)
        assert sw.apply(False)[0] is True
        assert os.readlink(etc / "active.php") == str(etc / "readwrite.php")
    assert capsys.readouterr().err.count("is damaged") == 2   # one per distinct damage


@pytest.mark.parametrize("key,value", [("content", 5), ("written", "!!"), ("perm", 99999),
                                       ("gid", True)])
def test_a_flag_record_damaged_leaves_a_flag_it_cannot_tell_as_its_own(tmp_path, key, value):
    (tmp_path / "app").mkdir()
    flag = tmp_path / "app" / "readonly.flag"
    flag.write_bytes(b"operator's own notice\n")
    sw = FlagFileSwitch(flag, "Read-only", tmp_path / "state")
    assert sw.apply(True)[0]
    damage(tmp_path, key, value)
    changed, detail = sw.apply(False)          # today's message: ours, removed; nothing raised
    assert changed and not flag.exists(), detail
