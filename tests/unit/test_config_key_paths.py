"""Paths inside a target: an S3 `prefix`, a source's `dest`, an rsync target's remote
`path` that the target cannot hold as written, or that would leave its place, are one
problem naming the key. Before, `prefix = a/../b`, `a//b`, a control character and a
prefix past S3's 1024-byte key limit were all accepted (the last failed on every put)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.config import load
from mirrord.config.keypaths import S3_KEY_MAX, parse_s3_prefix, parse_sub_path
from mirrord.errors import ConfigError


def ini(tmp_path: Path, *, prefix: str | None = None, dest: str | None = None,
        rsync_path: str | None = None) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    text = "[source:up]\npath = src\ntargets = bucket\n"
    text += f"dest = {dest}\n" if dest is not None else ""
    text += "[target:bucket]\ntype = s3\nbucket = wiki-mirror\n"
    text += f"prefix = {prefix}\n" if prefix is not None else ""
    if rsync_path is not None:
        text = text.replace("targets = bucket", "targets = bucket, host")
        text += f"[target:host]\ntype = rsync\nhost = mirror.example\npath = {rsync_path}\n"
    path = tmp_path / "m.ini"
    path.write_bytes(text.encode())
    return path


def problem(path: Path) -> tuple[str, str, str]:
    with pytest.raises(ConfigError) as info:
        load(path)
    (found,) = info.value.problems
    return found.section, found.key, found.message


BAD_SEGMENTS = ["..", "a/../b", "a/..", "./a", "a/./b", "a//b", "a\tb", "a\x1bb", "a\x7fb",
                "a\x01b"]


@pytest.mark.parametrize("prefix", BAD_SEGMENTS + ["/a", "//a", "a//"])
def test_a_prefix_s3_cannot_hold_as_written_is_one_problem(tmp_path, prefix):
    section, key, _ = problem(ini(tmp_path, prefix=prefix))
    assert (section, key) == ("target:bucket", "prefix")


def test_a_prefix_that_leaves_no_room_under_the_key_limit_is_a_problem(tmp_path):
    prefix = "p" * (S3_KEY_MAX - 1)        # with its '/', the whole key limit
    assert "1024-byte key limit" in problem(ini(tmp_path, prefix=prefix))[2]
    assert load(ini(tmp_path, prefix="é" * 500)).targets["bucket"].s3.prefix == "é" * 500 + "/"
    assert "1024-byte" in problem(ini(tmp_path, prefix="é" * 512))[2]   # bytes, not characters


@pytest.mark.parametrize("prefix, kept", [("", ""), ("mirror", "mirror/"), ("a/b/", "a/b/"),
                                          ("a.b/..c/d..", "a.b/..c/d../"), ("wiki uploads", "wiki uploads/")])
def test_a_plain_prefix_is_kept(tmp_path, prefix, kept):
    assert load(ini(tmp_path, prefix=prefix)).targets["bucket"].s3.prefix == kept


@pytest.mark.parametrize("dest", BAD_SEGMENTS + ["a/" + "n" * 256])
def test_a_dest_no_target_can_hold_is_one_problem(tmp_path, dest):
    section, key, message = problem(ini(tmp_path, dest=dest))
    assert (section, key) == ("source:up", "dest") and "plain relative sub-path" in message


def test_a_dest_that_leaves_no_room_under_the_prefix_is_a_problem(tmp_path):
    dest = "/".join(["d" * 200] * 4)                   # 803 bytes: fine alone
    assert load(ini(tmp_path, dest=dest)).sources[0].dest == dest
    section, key, message = problem(ini(tmp_path, dest=dest, prefix="p" * 220))
    assert (section, key) == ("source:up", "dest") and "[target:bucket] prefix" in message


@pytest.mark.parametrize("path", ["/srv/../etc", "/srv/./m", "/srv/m\tx", "/srv/m\x01x"])
def test_an_rsync_path_with_dot_segments_or_control_characters_is_a_problem(tmp_path, path):
    section, key, _ = problem(ini(tmp_path, rsync_path=path))
    assert (section, key) == ("target:host", "path")


@pytest.mark.parametrize("path, kept", [("/srv/mirror", "/srv/mirror"), ("/srv//mirror/", "/srv//mirror"),
                                        ("/", "/")])
def test_a_plain_rsync_path_is_kept(tmp_path, path, kept):
    assert load(ini(tmp_path, rsync_path=path)).targets["host"].rsync.path == kept


def test_the_parsers_messages():
    with pytest.raises(ValueError, match=r"has a '\.\.' segment"):
        parse_sub_path("a/../b")
    with pytest.raises(ValueError, match="control character \\(0x0a\\)"):
        parse_sub_path("a\nb")
    with pytest.raises(ValueError, match="empty segment"):
        parse_s3_prefix("a//b/")
    with pytest.raises(ValueError, match="must not start with '/'"):
        parse_s3_prefix("/a")
