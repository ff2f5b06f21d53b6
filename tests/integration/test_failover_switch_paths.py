"""What a flip writes, on real files: never through a symlink at `flag`, never a false
success when `readonly` is not a read-only config of its own. Real PostgreSQL pair, real
memcached (the Site of test_failover_procedure).

Before (a breaker): a symlink planted at `flag` had failover overwrite its target as
root (or create it, for a dangling link), and failback restore it; a `readonly` that
was the link, a symlink to it, or readwrite's file had failover exit 0 with
"already points at", the site still read-write; a directory or FIFO as `readonly`
passed app.target ("exists") and the link was pointed at it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.failover.appconfig import SymlinkSwitch
from tests.integration.test_failover_procedure import Site, _output


@pytest.fixture
def site(tmp_path, pg, memcached) -> Site:
    return Site(tmp_path, pg, memcached)


def _flag_mode(site: Site, flag: str) -> None:
    site.configure(mode="flagfile", flag=flag, link=None, readonly=None, readwrite=None)


@pytest.mark.parametrize("form", ["relative", "absolute", "dangling"])
def test_a_symlink_at_flag_is_refused_and_its_target_never_written(site: Site, capsys, form):
    victim = site.root / "victim" / "victim.conf"
    victim.parent.mkdir()
    if form != "dangling":
        victim.write_text("precious data\n")
    os.symlink(victim, site.etc / "ro.flag")
    _flag_mode(site, "etc/ro.flag" if form == "relative" else str(site.etc / "ro.flag"))
    assert site.run("failover") == 3, _output(capsys)
    out = _output(capsys)
    assert "app.flag" in out and "FAIL" in out
    assert os.readlink(site.etc / "ro.flag") == str(victim)
    if form == "dangling":
        assert not victim.exists()
    else:
        assert victim.read_text() == "precious data\n"
    assert site.run("failback") == 3
    assert os.path.islink(site.etc / "ro.flag")


def test_a_flag_under_a_symlinked_directory_is_written_there(site: Site, capsys):
    os.symlink(site.etc, site.root / "conf")
    _flag_mode(site, str(site.root / "conf" / "ro.flag"))
    assert site.run("failover") == 0, _output(capsys)
    assert (site.etc / "ro.flag").is_file() and not (site.etc / "ro.flag").is_symlink()
    assert site.run("failback") == 0
    assert not (site.etc / "ro.flag").exists()


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_readonly_that_is_no_file_nor_directory_fails_app_target(site: Site, capsys, kind):
    ro = site.etc / "ro"
    if kind == "fifo":
        os.mkfifo(ro)
    else:
        import socket
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(ro))
        sock.close()
    site.configure(readonly=str(ro))
    assert site.run("failover") == 3, _output(capsys)
    out = _output(capsys)
    assert "app.target" in out and "neither a regular file nor a directory" in out, out
    assert os.readlink(site.link) == site.original.decode()


@pytest.mark.parametrize("kind", ["directory", "symlink to a directory"])
def test_a_directory_layout_still_switches(site: Site, capsys, kind):
    """An app whose config is a directory (`conf -> conf.ro/`) switches as before (a
    review: refusing it made /ready 503 for good after an upgrade)."""
    ro = site.etc / "ro"
    if kind == "directory":
        ro.mkdir()
    else:
        (site.etc / "dir").mkdir()
        ro.symlink_to("dir")
    site.configure(readonly=str(ro))
    assert site.run("failover") == 0, _output(capsys)
    assert os.readlink(site.link) == str(ro)
    assert site.run("failback") == 0
    assert os.readlink(site.link) == site.original.decode()


def _switch(site: Site, readonly: Path) -> SymlinkSwitch:
    """A switch built as from_config does, for a `readonly` that became an alias after
    the config was checked (a deploy repointing a symlink): what load() cannot see."""
    return SymlinkSwitch(site.link, readonly, site.etc / "readwrite.php", site.state)


@pytest.mark.parametrize("shape", ["a symlink to the link", "a symlink to readwrite",
                                   "a hard link to readwrite"])
def test_a_readonly_that_became_an_alias_is_refused_not_reported_done(site: Site, shape):
    ro = site.etc / "ro-current.php"
    if shape == "a symlink to the link":
        os.symlink("active.php", ro)
    elif shape == "a symlink to readwrite":
        os.symlink("readwrite.php", ro)
    else:
        os.link(site.etc / "readwrite.php", ro)
    switch = _switch(site, ro)
    target = [c for c in switch.precheck(True) if c.name == "app.target"]
    assert target and target[0].refuses, target
    assert ("link" if shape.endswith("link") else "same file") in target[0].message
    if shape == "a symlink to the link":   # the link is not read-only: /ready must not say so
        assert not switch.is_readonly({})


def test_a_readonly_of_its_own_passes_app_target(site: Site):
    switch = _switch(site, site.etc / "readonly.php")
    assert not any(c.refuses for c in switch.precheck(True))
    assert not any(c.refuses for c in switch.precheck(False))
