"""[failover] mode = symlink with something other than a symlink at `link`: app.link says
what stands there and what to do, and still refuses (exit 3, nothing changed).

A user's `link` named the application's config itself, a regular file: precheck refused
with "not a symlink (Invalid argument)" and "exists but is not a symlink; refusing to
replace it", readlink's errno and no hint. The same for a directory or a FIFO there; and a
`link` whose directory is a file said "exists" of a path that cannot exist.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.cli.main import main
from mirrord.failover.appconfig import SymlinkSwitch
from mirrord.failover.force import forceable
from tests.unit.test_failover_appconfig import etc  # noqa: F401 (fixture)




def switch(etc: Path, tmp_path: Path, link: Path | None = None) -> SymlinkSwitch:
    return SymlinkSwitch(link or etc / "active.php", etc / "readonly.php",
                         etc / "readwrite.php", tmp_path / "state")


PLANT = {"a regular file": lambda p: p.write_text("<?php $wgReadOnly = false;"),
         "a directory": lambda p: p.mkdir(),
         "a FIFO (named pipe)": lambda p: os.mkfifo(p)}


@pytest.mark.parametrize("what", list(PLANT))
@pytest.mark.parametrize("readonly", [True, False], ids=["failover", "failback"])
def test_what_stands_at_link_is_named_with_what_to_do(etc, tmp_path, what, readonly):
    link = etc / "active.php"
    PLANT[what](link)
    before = os.lstat(link)
    sw = switch(etc, tmp_path)
    (check,) = sw.precheck(readonly)
    assert check.name == "app.link" and check.refuses and not forceable(check)
    assert check.value == f"{what}, not a symlink"
    assert f"{link} is {what}, not a symlink" in check.message
    assert "Move it aside" in check.message
    assert f"ln -s {etc / 'readwrite.php'} {link}" in check.message
    assert "[failover] mode = flagfile" in check.message
    assert f"now: {what}, not a symlink" in sw.describe(readonly)
    assert os.lstat(link).st_ino == before.st_ino    # nothing replaced


def test_a_link_whose_directory_is_a_file_is_not_said_to_exist(etc, tmp_path):
    (etc / "conf").write_text("a file where the link's directory goes")
    link = etc / "conf" / "active.php"
    (check,) = switch(etc, tmp_path, link).precheck(True)
    assert check.refuses and not forceable(check)
    assert check.value == "unreadable (Not a directory)"
    assert "a component of its directory is not a directory" in check.message
    assert "exists" not in check.message


def test_failover_dry_run_prints_it_and_exits_3(etc, tmp_path, capsys):
    (etc / "active.php").write_text("<?php")
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path}/state\n\n[failover]\n"
                   "database = host=127.0.0.1 port=1 dbname=wiki connect_timeout=2\n"
                   f"mode = symlink\nlink = {etc}/active.php\nreadonly = {etc}/readonly.php\n"
                   f"readwrite = {etc}/readwrite.php\n")
    ini.chmod(0o600)
    assert main(["-c", str(ini), "failover", "--dry-run"]) == 3
    out = capsys.readouterr()
    line = next(x for x in out.out.splitlines() if " app.link " in x)
    assert line.split()[0] == "FAIL" and "value=a regular file, not a symlink" in line
    assert f"{etc}/active.php is a regular file, not a symlink" in line
    assert (etc / "active.php").read_text() == "<?php"
