"""Exclude patterns read the way rsync and .gitignore read them: a trailing `/` is a
directory (and everything below it), a leading `/` anchors at the source root, `**`
crosses directories, a plain name matches at any depth, `!` re-includes; today's
default patterns keep their meaning; a bad pattern is a config error (exit 2); and
`check-config --json` shows what each pattern matches."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mirrord.config import SourceConfig, load
from mirrord.errors import ConfigError
from mirrord.exclude import PatternError, check_pattern

ROOT = Path(__file__).resolve().parents[2]
MIRRORD = ROOT / ".venv" / "bin" / "mirrord"
DEFAULTS = ("*.tmp", "*.part", ".*.swp", "*~", ".nfs*")


def source(*patterns: str) -> SourceConfig:
    return SourceConfig("up", Path("/srv/uploads"), ("t",), exclude=patterns)


def test_a_trailing_slash_excludes_the_directory_and_everything_below_but_not_a_file():
    src = source("thumb/", "lockdir/")
    assert src.excluded("thumb", is_dir=True) and src.excluded("lockdir", is_dir=True)
    assert src.excluded("thumb/a/ab/Example.jpg/120px-Example.jpg")
    assert src.excluded("thumb/a/ab", is_dir=True)
    assert src.excluded("wiki2/thumb/x.jpg")          # no other slash: any depth
    assert not src.excluded("thumb")                   # a file called thumb is mirrored
    assert not src.excluded("a/ab/thumb")
    assert not src.excluded("thumbnails/x.jpg") and not src.excluded("a/ab/Example.jpg")


def test_a_leading_slash_anchors_at_the_source_root():
    src = source("/temp")
    assert src.excluded("temp", is_dir=True) and src.excluded("temp/a/ab/x.jpg")
    assert src.excluded("temp")                        # no trailing slash: a file too
    assert not src.excluded("deep/dir/temp/y.png") and not src.excluded("deep/temp", is_dir=True)


def test_double_star_crosses_directories():
    src = source("**/cache/", "a/**/b.jpg")
    assert src.excluded("cache/x.jpg") and src.excluded("deep/dir/cache/x.jpg")
    assert src.excluded("deep/cache", is_dir=True) and not src.excluded("deep/cache")
    assert src.excluded("a/b.jpg") and src.excluded("a/x/y/b.jpg")
    assert not src.excluded("z/a/b.jpg")


def test_a_plain_name_matches_at_any_depth_and_a_middle_slash_anchors():
    src = source("cache", "cache2/*.jpg")
    assert src.excluded("cache") and src.excluded("x/y/cache") and src.excluded("x/cache/z.png")
    assert src.excluded("cache2/a.jpg") and not src.excluded("x/cache2/a.jpg")
    assert not src.excluded("cache2/a.png") and not src.excluded("cached/x")


def test_a_negation_re_includes_except_below_an_excluded_directory():
    src = source("*.tmp", "!keep.tmp", "thumb/", "!thumb/keep.jpg")
    assert src.excluded("a/x.tmp") and not src.excluded("a/keep.tmp")
    # gitignore: "It is not possible to re-include a file if a parent directory of
    # that file is excluded" -- and the walk never descends into thumb/ anyway.
    assert src.excluded("thumb/keep.jpg")
    later_wins = source("!keep.tmp", "*.tmp")
    assert later_wins.excluded("keep.tmp")


def test_todays_default_patterns_keep_their_meaning():
    src = source(*DEFAULTS, "cache/*")
    for path in ("x.tmp", "a/ab/upload.part", "a/.Example.jpg.swp", "a/ab/Example.jpg~",
                 ".nfs000123", "a/ab/.nfs0042", "cache/x", "cache/x/y"):
        assert src.excluded(path), path
    for path in ("a/ab/Example.jpg", "x.tmp.jpg", "a/swp", "a/cache/x", "nfs", "a/ab/Ex~ample.jpg"):
        assert not src.excluded(path), path
    assert source(".*").excluded("a/.git/config") and source(".*").excluded(".hidden/file")


def test_no_patterns_exclude_nothing():
    assert not source().excluded("anything/at/all") and not source().excluded("x", is_dir=True)


@pytest.mark.parametrize("pattern", ["!", "\\", "[z-a].jpg", "a[", "/", "#comment"])
def test_a_pattern_pathspec_refuses_or_drops_is_refused(pattern):
    with pytest.raises(PatternError) as info:
        check_pattern(pattern)
    assert repr(pattern) in str(info.value)


def write(tmp_path: Path, exclude: str) -> Path:
    (tmp_path / "up" / "thumb" / "a" / "ab").mkdir(parents=True)
    (tmp_path / "up" / "thumb" / "a" / "ab" / "120px-x.jpg").write_bytes(b"t")
    (tmp_path / "up" / "a" / "ab").mkdir(parents=True)
    (tmp_path / "up" / "a" / "ab" / "x.jpg").write_bytes(b"x")
    path = tmp_path / "m.ini"
    path.write_text(f"[mirrord]\nstate_dir = ./state\n\n[source:up]\npath = ./up\n"
                    f"targets = m\nexclude = {exclude}\n\n[target:m]\ntype = local\npath = ./mirror\n")
    path.chmod(0o600)
    return path


def test_load_names_file_section_and_key_of_every_bad_pattern(tmp_path):
    path = write(tmp_path, "thumb/, [z-a], !")
    with pytest.raises(ConfigError) as info:
        load(path)
    found = [(p.file, p.section, p.key) for p in info.value.problems]
    assert found == [(str(path), "source:up", "exclude")] * 2
    assert "'[z-a]'" in info.value.problems[0].message and "'!'" in info.value.problems[1].message


def test_check_config_exits_2_on_a_bad_pattern(tmp_path):
    path = write(tmp_path, "thumb/, a[")
    res = subprocess.run([str(MIRRORD), "-c", str(path), "check-config"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert "Traceback" not in res.stderr
    assert f"{path}: [source:up] exclude: pattern 'a[' matches nothing" in res.stderr


def test_check_config_json_shows_what_each_pattern_matches(tmp_path):
    path = write(tmp_path, "thumb/, /temp, *.tmp, !keep.tmp")
    res = subprocess.run([str(MIRRORD), "-c", str(path), "check-config", "--json"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (src,) = json.loads(res.stdout)["sources"]
    preview = {item["pattern"]: item for item in src["exclude_preview"]}
    assert list(preview) == ["thumb/", "/temp", "*.tmp", "!keep.tmp"]
    thumb = preview["thumb/"]
    assert thumb["effect"] == "excludes"
    assert thumb["samples"] == ["thumb/", "thumb/a/ab/Example.jpg/120px-Example.jpg"]
    assert thumb["real"] == ["thumb/", "thumb/a/", "thumb/a/ab/", "thumb/a/ab/120px-x.jpg"]
    assert thumb["real_checked"] == 7        # a/ a/ab/ a/ab/x.jpg thumb/ ... breadth first
    assert preview["/temp"]["samples"] == ["temp/", "temp/a/ab/x.jpg"]   # not deep/dir/temp/
    assert preview["/temp"]["real"] == []
    assert preview["*.tmp"]["samples"] == ["x.tmp"]
    assert preview["!keep.tmp"]["effect"] == "re-includes"
    res = subprocess.run([str(MIRRORD), "-c", str(path), "check-config"], capture_output=True,
                         text=True, cwd=tmp_path)
    lines = [line.strip() for line in res.stdout.splitlines() if "exclude '" in line]
    assert len(lines) == 4 and lines[0].startswith("exclude 'thumb/' excludes 2 of ")
    assert "4 of the first 7 real paths (thumb/, thumb/a/, thumb/a/ab/, thumb/a/ab/120px-x.jpg)" in lines[0]


def test_callers_that_know_a_directory_ask_with_its_trailing_slash():
    """Found by trying it: `thumb/` never matched the directory itself, so an empty thumb/
    reached the targets and a renamed thumb/ took its unshipped files' place."""
    from mirrord.exclude import compile_excludes, excluded_entry
    m = compile_excludes(("thumb/", "*.tmp"))
    assert excluded_entry(m.excluded, "a/thumb", True)
    assert not excluded_entry(m.excluded, "a/thumb", False)         # a file named thumb
    assert excluded_entry(m.excluded, "x.tmp", False)
    names = []
    assert not excluded_entry(lambda p: names.append(p) or False, "d", True)   # any callable
    assert names == ["d", "d/"]


def test_path_patterns_make_directory_renames_change_what_is_excluded():
    from mirrord.exclude import compile_excludes
    assert not compile_excludes(("*.tmp", "thumb/", ".nfs*", "!keep.tmp")).path_dependent
    for pattern in ("cache/*.jpg", "/temp", "a/**/b", "!/keep"):
        assert compile_excludes((pattern,)).path_dependent, pattern
