"""`mirrord trash` and `undelete` text output: one line per kept version whatever its name.

A name holding a newline printed raw split its line, so one kept version read as two
entries (a breaker's find; `--json` was right). Names are written with a backslash and
every control character escaped, as `ls -b` writes them."""

from __future__ import annotations

import json

import pytest

from mirrord.cli.trash import _trash_lines
from mirrord.cli.undelete import _outcome_line
from mirrord.trash.listing import shown_path
from mirrord.trash.model import Kept
from mirrord.trash.restore import Outcome


@pytest.mark.parametrize("name,shown", [
    ("a\nb.jpg", "a\\nb.jpg"), ("tab\there", "tab\\there"), ("cr\r", "cr\\r"),
    ("bell\x07", "bell\\x07"), ("del\x7f", "del\\x7f"), ("back\\slash", "back\\\\slash"),
    ("plain/été.jpg", "plain/été.jpg"), ("caf\udce9.jpg", "caf\udce9.jpg")])
def test_a_name_is_shown_on_one_line_and_unambiguously(name, shown):
    assert shown_path(name) == shown and "\n" not in shown_path(name)


def _kept(path: str) -> Kept:
    return Kept(path=path, stamp="20261130T040000.000000Z", why="deleted", size=3,
                mtime_ns=0, mode=0o644, key=f".mirrord/trash/x/{path}")


def test_the_trash_listing_has_one_line_per_version_whatever_the_names():
    kept = [_kept("two\nlines.jpg"), _kept("fine.jpg")]
    lines = "\n".join(_trash_lines({"mirror": ("kept", kept)})).splitlines()
    entries = [line for line in lines if line.startswith("  20")]
    assert len(entries) == 2 and entries[0].endswith("two\\nlines.jpg")


def test_an_undelete_outcome_is_one_line():
    line = _outcome_line(Outcome("restored", "mirror:two\nlines.jpg", _kept("two\nlines.jpg")))
    assert "\n" not in line and "two\\nlines.jpg" in line


@pytest.mark.parametrize("command", [["trash"], ["trash", "--json"],
                                     ["undelete", "--dry-run", "--all"],
                                     ["undelete", "--all"]])   # a real one: looked at first
def test_an_empty_mount_point_as_the_mirror_root_is_named_not_read_as_nothing_kept(
        tmp_path, capsys, command):
    """The mirror host's NFS mount gone, its mount point empty: `trash` said "0 kept
    versions", exit 0, as if nothing had been kept. The root is named on stderr, exit 1;
    nothing is made there."""
    from mirrord.cli import main as cli_main

    mirror = tmp_path / "mnt" / "mirror"
    mirror.mkdir(parents=True)
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n\n[target:mirror]\n"
                   f"type = local\npath = {mirror}\nkeep_deleted = 7d\n")
    assert cli_main.main(["-c", str(ini), *command]) == 1
    out, err = capsys.readouterr()
    assert f"target mirror: local:mirror({mirror}): the mirror root is empty" in err, err
    assert "is its file system mounted?" in err
    # nothing on stdout or stderr says "nothing kept" beside it (a new user's report: the
    # listing said "0 kept versions", undelete "nothing kept at or below")
    assert "nothing kept at or below" not in err
    if command == ["trash", "--json"]:
        doc = json.loads(out)
        assert doc["no_mirror"] == ["mirror"] and doc["targets"] == {}
    else:
        assert "kept versions" not in out and "nothing kept" not in out, out
    assert list(mirror.iterdir()) == []
    (mirror / ".mirrord").mkdir()   # what an earlier command may have made there: still empty
    assert cli_main.main(["-c", str(ini), *command]) == 1
    assert "root is empty" in capsys.readouterr().err
    (mirror / "a.jpg").write_bytes(b"mirrored")   # mounted: the mirror's files, nothing kept
    assert cli_main.main(["-c", str(ini), *command]) == 0
    assert "root is empty" not in capsys.readouterr().err
