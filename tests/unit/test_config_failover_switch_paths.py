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


# -------------------------------------------------------------- on mirrord's own files
@pytest.mark.parametrize("key,value,words", [
    ("flag", "mirrord.ini", "is this config file"),
    ("flag", "state/failover.log", "is inside [mirrord] state_dir"),
    ("flag", "state/not-yet.flag", "is inside [mirrord] state_dir"),
    ("flag", "state", "is inside [mirrord] state_dir"),
    ("link", "state/failover-appconfig.json", "is inside [mirrord] state_dir"),
    ("link", "mirrord.ini", "is this config file"),
])
def test_a_flip_path_on_mirrords_own_files_is_refused(tmp_path, key, value, words):
    site(tmp_path)
    if key == "flag":
        lines = f"mode = flagfile\nflag = {value}\n"
    else:
        lines = f"mode = symlink\nlink = {value}\nreadonly = etc/readonly.php\n" \
                "readwrite = etc/readwrite.php\n"
    found = problems(config(tmp_path, lines))
    assert has(found, "failover", key, words), found
    assert failover_keys(found) == [key], found


def test_a_flag_hard_linked_to_the_config_file_is_refused(tmp_path):
    etc = site(tmp_path)
    path = config(tmp_path, "mode = flagfile\nflag = etc/ro.flag\n")
    os.link(path, etc / "ro.flag")
    assert has(problems(path), "failover", "flag", "is this config file")


@pytest.mark.parametrize("other", ["readonly", "readwrite", "link"])
def test_a_flag_on_another_failover_key_is_refused(tmp_path, other):
    site(tmp_path)
    value = {"readonly": "etc/readonly.php", "readwrite": "etc/readwrite.php",
             "link": "etc/active.php"}[other]
    found = problems(config(tmp_path, f"mode = flagfile\nflag = {value}\n{other} = {value}\n"))
    assert has(found, "failover", "flag", f"is also [failover] {other}"), found


# -------------------------------------------------------------- readonly is its own file
@pytest.mark.parametrize("shape", ["the link", "a symlink to the link", "readwrite",
                                   "readwrite spelled otherwise", "a symlink to readwrite",
                                   "a hard link to readwrite"])
def test_a_readonly_that_is_not_a_file_of_its_own_is_refused(tmp_path, shape):
    etc = site(tmp_path)
    ro = {"the link": "etc/active.php", "readwrite": "etc/readwrite.php",
          "readwrite spelled otherwise": "etc/../etc/./readwrite.php"}.get(shape, "etc/alias.php")
    if shape == "a symlink to the link":
        os.symlink("active.php", etc / "alias.php")
    elif shape == "a symlink to readwrite":
        os.symlink("readwrite.php", etc / "alias.php")
    elif shape == "a hard link to readwrite":
        os.link(etc / "readwrite.php", etc / "alias.php")
    found = problems(config(tmp_path, SYMLINK.format(ro=ro, rw="etc/readwrite.php")))
    words = "is [failover] link" if shape.endswith("the link") \
        else "is the same file as [failover] readwrite"
    assert has(found, "failover", "readonly", words), found
    assert failover_keys(found) == ["readonly"], found


def test_a_readwrite_that_is_the_link_is_refused(tmp_path):
    site(tmp_path)
    found = problems(config(tmp_path, SYMLINK.format(ro="etc/readonly.php",
                                                     rw="etc/active.php")))
    assert has(found, "failover", "readwrite", "is [failover] link"), found


@pytest.mark.parametrize("after_failover", [False, True])
def test_distinct_configs_load_before_and_after_a_failover(tmp_path, after_failover):
    etc = site(tmp_path)
    (etc / "releases").mkdir()
    (etc / "releases" / "ro.php").write_text("ro")
    os.symlink("releases/ro.php", etc / "ro-current.php")   # a deploy's symlinked readonly
    if after_failover:
        os.unlink(etc / "active.php")
        os.symlink("ro-current.php", etc / "active.php")
    cfg = load(config(tmp_path, SYMLINK.format(ro="etc/ro-current.php",
                                               rw="etc/readwrite.php")))
    assert cfg.failover.readonly == etc / "ro-current.php"


# -------------------------------------------------------------- durations above zero
@pytest.mark.parametrize("key", ["switchover_timeout", "max_heartbeat_age"])
@pytest.mark.parametrize("value", ["0", "0s", "0ms"])
def test_a_zero_wait_or_freshness_limit_is_refused(tmp_path, key, value):
    site(tmp_path)
    found = problems(config(tmp_path, SYMLINK.format(ro="etc/readonly.php",
                                                     rw="etc/readwrite.php")
                            + f"{key} = {value}\n"))
    assert has(found, "failover", key, "must be greater than zero"), found


@pytest.mark.parametrize("key", ["max_replay_lag", "max_clock_skew"])
def test_a_zero_tolerance_still_loads(tmp_path, key):
    site(tmp_path)
    cfg = load(config(tmp_path, SYMLINK.format(ro="etc/readonly.php", rw="etc/readwrite.php")
                      + f"{key} = 0\n"))
    assert getattr(cfg.failover, key) == 0


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


def test_a_link_naming_the_config_files_symlink_is_refused(tmp_path):
    """/etc/mirrord/mirrord.ini -> /srv/conf/mirrord.ini and `link` naming the first: the
    flip would replace the config's symlink (a review: every later command exited 2)."""
    etc = site(tmp_path)
    real = config(tmp_path, SYMLINK.format(ro=etc / "readonly.php", rw=etc / "readwrite.php")
                  .replace("link = etc/active.php", f"link = {etc / 'mirrord.ini'}"))
    (etc / "mirrord.ini").symlink_to(real)
    found = problems(etc / "mirrord.ini")
    assert has(found, "failover", "link", "is this config file"), found
