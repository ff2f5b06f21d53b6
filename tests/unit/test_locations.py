"""mirrord.locations: a target's location (or a source's dest) changed between two runs
voids that pair's record of what was shipped, and only that pair's; real SQLite."""

from __future__ import annotations

import logging

import pytest

from mirrord import config as config_mod
from mirrord import locations
from mirrord.journal import Journal

BASE = """
[mirrord]
state_dir = {tmp}/state

[source:up]
path = {tmp}/src
targets = disk, host, bucket
{dest}

[target:disk]
type = local
path = {tmp}/{disk}

[target:host]
type = rsync
host = {host}
{port}path = /srv/mirror

[target:bucket]
type = s3
bucket = bucket-one
prefix = {prefix}
endpoint_url = {endpoint}
access_key_id = AKIAEXAMPLE
secret_access_key = s3cr3t-never-logged
"""


def _cfg(tmp_path, **over):
    values = {"tmp": tmp_path, "dest": "", "disk": "mirror", "host": "mirror.example", "port": "",
              "prefix": "up/", "endpoint": "https://s3.example:9000", **over}
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "mirror").mkdir(exist_ok=True)
    if not (tmp_path / "link-to-mirror").is_symlink():
        (tmp_path / "link-to-mirror").symlink_to(tmp_path / "mirror")
    path = tmp_path / "m.ini"
    path.write_text(BASE.format(**values))
    return config_mod.load(path)


def _journal(tmp_path, cfg):
    return Journal(cfg.mirrord.journal_path, {"up": ("disk", "host", "bucket")})


def _ship(journal, target: str, key: bytes = b"a.jpg") -> None:
    journal.db.execute("INSERT INTO shipped (target, source, key, size, mtime_ns) "
                       "VALUES (?, 'up', ?, 1, 1)", (target, key))


def _shipped(journal) -> set[str]:
    return {t for (t,) in journal.db.execute("SELECT DISTINCT target FROM shipped")}


@pytest.mark.parametrize("change, voided", [
    ({"disk": "elsewhere"}, {("disk", "up")}),
    ({"host": "other.example"}, {("host", "up")}),
    ({"prefix": "moved/"}, {("bucket", "up")}),
    ({"endpoint": "https://s3.other:9000"}, {("bucket", "up")}),
    ({"dest": "dest = sub"}, {("disk", "up"), ("host", "up"), ("bucket", "up")}),
    ({"port": "port = 2202\n"}, {("host", "up")}),   # a port forward to another machine
    ({}, set()),
    # one place spelled another way: nothing re-sent
    ({"disk": "./mirror/"}, set()),
    ({"disk": "link-to-mirror"}, set()),
    ({"host": "Mirror.EXAMPLE"}, set()),
    ({"host": "mirror.example."}, set()),
    ({"port": "port = 22\n"}, set()),
    ({"prefix": "up"}, set()),
    ({"endpoint": "HTTPS://S3.Example:9000/"}, set()),
])
def test_a_changed_location_voids_only_its_record(tmp_path, change, voided):
    first = _cfg(tmp_path)
    j = _journal(tmp_path, first)
    assert locations.check(j, first) == []      # a first run: recorded, nothing voided
    for t in ("disk", "host", "bucket"):
        _ship(j, t)
    later = _cfg(tmp_path, **change)
    assert set(locations.check(j, later)) == voided
    assert _shipped(j) == {"disk", "host", "bucket"} - {t for t, _ in voided}
    assert locations.check(j, later) == []      # the new place is the record's now


def test_an_endpoints_default_port_spelled_out_is_the_same_place(tmp_path):
    j = _journal(tmp_path, first := _cfg(tmp_path, endpoint="https://s3.example"))
    locations.check(j, first)
    _ship(j, "bucket")
    assert locations.check(j, _cfg(tmp_path, endpoint="https://s3.example:443")) == []
    assert locations.check(j, _cfg(tmp_path, endpoint="http://s3.example:80")) == [("bucket", "up")]


def test_a_field_the_stored_location_lacks_is_not_compared(tmp_path):
    """A location stored before `port` was part of it: the next start re-sends nothing."""
    cfg = _cfg(tmp_path)
    j = _journal(tmp_path, cfg)
    locations.check(j, cfg)
    key = locations._key("host", "up")
    old = dict(j.get_state(key))
    del old["port"]
    j.set_state(key, old)
    _ship(j, "host")
    assert locations.check(j, cfg) == []
    assert j.get_state(key)["port"] == "22"     # stored whole from now on
    assert _shipped(j) == {"host"}


def test_a_database_from_before_the_check_keeps_its_record(tmp_path):
    cfg = _cfg(tmp_path)
    j = _journal(tmp_path, cfg)
    _ship(j, "disk")
    assert locations.check(j, cfg) == []
    assert _shipped(j) == {"disk"}


def test_the_line_names_target_and_change_and_no_credential(tmp_path, caplog):
    cfg = _cfg(tmp_path, endpoint="https://s3.example:9000/?X-Amz-Signature=sig")
    j = _journal(tmp_path, cfg)
    locations.check(j, cfg)
    _ship(j, "bucket")
    with caplog.at_level(logging.INFO, logger="mirrord.daemon"):
        locations.check(j, _cfg(tmp_path, prefix="moved/",
                                endpoint="https://s3.example:9000/?X-Amz-Signature=sig"))
    lines = [r.getMessage() for r in caplog.records if "location changed" in r.getMessage()]
    assert len(lines) == 1 and "target=bucket" in lines[0], lines
    assert "prefix: 'up/' -> 'moved/'" in lines[0]
    for secret in ("X-Amz-Signature", "s3cr3t-never-logged", "AKIAEXAMPLE"):
        assert secret not in lines[0]


def _rows(journal, target: str) -> list[tuple]:
    return journal.db.execute("SELECT key, size FROM shipped WHERE target = ? ORDER BY key",
                              (target,)).fetchall()


def test_a_return_to_a_location_used_before_brings_its_record_back(tmp_path):
    """A, then B, then A: A's rows come back (the catch-up then deletes at A what the
    source lost meanwhile); B's are set aside, and come back on a return to B."""
    a, b = _cfg(tmp_path), _cfg(tmp_path, disk="elsewhere")
    j = _journal(tmp_path, a)
    locations.check(j, a)
    _ship(j, "disk", b"gone-at-source.jpg")
    _ship(j, "disk", b"kept.jpg")
    assert locations.check(j, b) == [("disk", "up")]
    assert _rows(j, "disk") == []
    _ship(j, "disk", b"sent-to-b.jpg")
    assert locations.check(j, a) == [("disk", "up")]
    assert _rows(j, "disk") == [(b"gone-at-source.jpg", 1), (b"kept.jpg", 1)]
    assert _shipped(j) == {"disk"}             # the other targets' records untouched
    assert locations.check(j, b) == [("disk", "up")]
    assert _rows(j, "disk") == [(b"sent-to-b.jpg", 1)]
    aside = j.db.execute("SELECT COUNT(*) FROM shipped_aside").fetchone()[0]
    assert aside == 2                          # A's two rows, set aside once (not twice)


def test_only_the_last_locations_left_are_kept(tmp_path):
    """ASIDE_KEEP records per pair; a return to a place dropped is a first visit."""
    places = [f"m{i}" for i in range(locations.ASIDE_KEEP + 2)]
    j = _journal(tmp_path, first := _cfg(tmp_path, disk=places[0]))
    locations.check(j, first)
    for i, place in enumerate(places):
        locations.check(j, _cfg(tmp_path, disk=place))
        _ship(j, "disk", f"{place}.jpg".encode())
    kept = j.db.execute("SELECT COUNT(DISTINCT location) FROM shipped_aside").fetchone()[0]
    assert kept == locations.ASIDE_KEEP
    locations.check(j, _cfg(tmp_path, disk=places[0]))   # dropped: nothing comes back
    assert _rows(j, "disk") == []
    locations.check(j, _cfg(tmp_path, disk=places[-2]))  # kept: its record comes back
    assert _rows(j, "disk") == [(f"{places[-2]}.jpg".encode(), 1)]


def test_the_return_line_says_the_record_is_restored(tmp_path, caplog):
    a, b = _cfg(tmp_path), _cfg(tmp_path, prefix="moved/")
    j = _journal(tmp_path, a)
    locations.check(j, a)
    _ship(j, "bucket")
    locations.check(j, b)
    with caplog.at_level(logging.INFO, logger="mirrord.daemon"):
        locations.check(j, a)
    (line,) = [r.getMessage() for r in caplog.records if "location changed" in r.getMessage()]
    assert "used before" in line and "restored=1" in line and "target=bucket" in line, line
