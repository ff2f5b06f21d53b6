"""[failover] paths a flip writes, checked at load (mirrord/config/switchpaths.py).

Before (a breaker): `flag` was resolved at load, so a symlink planted there was followed
and its target written as root; `flag = mirrord.ini` or `<state_dir>/failover.log`, and
`link = <state_dir>/failover-appconfig.json`, passed check-config and a failover
overwrote mirrord's own file; `readonly` naming the link (directly or through a
symlink) or the same file as `readwrite` passed, and failover said "already points at"
with exit 0 while the site stayed read-write; `switchover_timeout = 0` passed and
switchover always refused. Each is now one problem at load naming the key."""

from __future__ import annotations

import os

import pytest

from mirrord.config import load
from tests.unit.test_config import has, problems, write

BASE = """
[mirrord]
state_dir = {tmp}/state

[failover]
database = host=db dbname=app
"""
SYMLINK = "mode = symlink\nlink = etc/active.php\nreadonly = {ro}\nreadwrite = {rw}\n"


def site(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "readonly.php").write_text("ro")
    (etc / "readwrite.php").write_text("rw")
    os.symlink("readwrite.php", etc / "active.php")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "failover.log").write_text("{}\n")
    return etc


def config(tmp_path, lines: str):
    return write(tmp_path, BASE.format(tmp=tmp_path) + lines)


def failover_keys(found) -> list[str]:
    return sorted(k for s, k, _ in found if s == "failover")


# -------------------------------------------------------------- flag: never followed
@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_a_symlink_at_flag_is_kept_as_the_flag_not_its_target(tmp_path, form):
    etc = site(tmp_path)
    (tmp_path / "victim.conf").write_text("precious")
    (etc / "ro.flag").symlink_to(tmp_path / "victim.conf")
    flag = "etc/ro.flag" if form == "relative" else str(etc / "ro.flag")
    cfg = load(config(tmp_path, f"mode = flagfile\nflag = {flag}\n"))
    assert cfg.failover.flag == etc / "ro.flag"


def test_a_symlinked_directory_above_flag_is_resolved(tmp_path):
    etc = site(tmp_path)
    (tmp_path / "conf").symlink_to(etc)
    cfg = load(config(tmp_path, "mode = flagfile\nflag = conf/ro.flag\n"))
    assert cfg.failover.flag == etc / "ro.flag"


def test_a_flag_naming_the_root_directory_is_refused(tmp_path):
    site(tmp_path)
    found = problems(config(tmp_path, "mode = flagfile\nflag = /\n"))
    assert has(found, "failover", "flag", "names a directory"), found


# -------------------------------------------------------------- a target's root: the place itself
TARGET = "[target:t]\ntype = local\npath = {root}\n"


def test_a_flag_symlink_inside_a_target_root_is_refused_whatever_it_points_at(tmp_path):
    site(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "ro.flag").symlink_to(tmp_path / "elsewhere.flag")   # the place is in the root
    found = problems(config(tmp_path, f"mode = flagfile\nflag = {root}/ro.flag\n\n"
                            + TARGET.format(root=root)))
    assert has(found, "failover", "flag", "is inside [target:t] path"), found


def test_a_link_outside_a_target_root_pointing_into_it_loads(tmp_path):
    etc = site(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "readwrite.php").write_text("rw")
    os.unlink(etc / "active.php")
    os.symlink(root / "readwrite.php", etc / "active.php")   # only the link is replaced
    cfg = load(config(tmp_path, SYMLINK.format(ro="etc/readonly.php", rw="etc/readwrite.php")
                      + "\n" + TARGET.format(root=root)))
    assert cfg.failover.link == etc / "active.php"
