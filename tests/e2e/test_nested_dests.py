"""Two sources feed one target, one's `dest` nested below the other's: a tree removal or a
directory move of the outer source's directory leaves the inner source's area in place.

Source `uploads` has `dest` empty, source `thumbs` has `dest = media/thumbs` (README,
`[source]` `dest`; a reconcile spares such an area). `rm -rf media` at `uploads` was sent as
a tree removal of `media` that took every thumbnail with it, while `thumbs`' `shipped`
record still listed them, so nothing sent them again until a reconcile; `mv media old`
carried them to `old/thumbs`, and a catch-up's removal of the recorded `media` did the
same as the live one (mirrord.nested). The real `mirrord run` against a local directory,
S3 (SeaweedFS) and a mirror host (rsync over sshd), with `[reconcile] at_start = no` and
`every = off`: no pass repairs anything; each target must hold exactly both sources' files
(and, where a target has directories, their directories plus the parents of the nested
area), and a reconcile dry run must then propose nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import source_files, target_files
from tests.e2e.test_stopped_changes import write
from tests.reliability.conftest import Env, live_only_config, poll

AREA = "media/thumbs"


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    thumbs = tmp_path / "thumbs-src"
    thumbs.mkdir()
    cfg = live_only_config(tmp_path, seaweedfs, sshd)
    cfg.write_text(cfg.read_text() + "at_start = no\n\n[source:thumbs]\n"   # [reconcile] is last
                   f"path = {thumbs}\ntargets = local, s3, host\ndest = {AREA}\n")
    e = Env(tmp_path, cfg)
    e.thumbs = thumbs
    try:
        yield e
    finally:
        e.close()


def _dirs(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), root) for d, names, _ in os.walk(root)
            for n in names}


def _want(e: Env) -> tuple[dict[str, bytes], set[str]]:
    files = source_files(e.src)
    files.update({f"{AREA}/{p}": data for p, data in source_files(e.thumbs).items()})
    dirs = _dirs(e.src) | {"media", AREA} | {f"{AREA}/{d}" for d in _dirs(e.thumbs)}
    return files, dirs


def _holds(e: Env, name: str) -> bool:
    target = e.targets[name]
    files, dirs = _want(e)
    if target_files(target) != files:
        return False
    return not target.features.directories or {x.path for x in target.list() if x.is_dir} == dirs


def _assert_both_exact(e: Env, what: str) -> None:
    """Every target holds both sources' files (bounded polls), nothing is pending, and a
    reconcile dry run proposes nothing: the live stream or the catch-up did it all."""
    try:
        poll(lambda: all(_holds(e, name) for name in e.targets), timeout=90,
             what="every target to hold both sources")
    except AssertionError:
        files, dirs = _want(e)
        wrong = {}
        for name, target in e.targets.items():
            have = target_files(target)
            have_dirs = ({x.path for x in target.list() if x.is_dir}
                         if target.features.directories else dirs)
            wrong[name] = {"missing": sorted(set(files) - set(have)),
                           "extra": sorted(set(have) - set(files)),
                           "dirs missing": sorted(dirs - have_dirs),
                           "dirs extra": sorted(have_dirs - dirs)}
        raise AssertionError(f"{what}: {wrong}") from None
    poll(e.drained, timeout=90, what="the backlog drained")
    plan = json.loads(e.daemon.cli("reconcile", "--dry-run", "--json", check=False).stdout)
    proposed = {name: (t.get("would_send", []), t.get("would_delete", []))
                for name, t in plan["targets"].items()
                if t.get("would_send") or t.get("would_delete")}
    assert proposed == {}, f"{what} left work for reconcile: {proposed}"
    assert "reconcile pass queued" not in e.log_text(), f"a pass repaired what {what} missed"


def _populate_and_start(e: Env) -> None:
    write(e.src / "keep.jpg", b"kept")
    write(e.src / "media" / "a.jpg", b"a" * 300)
    write(e.src / "media" / "sub" / "b.jpg", b"b" * 200)
    write(e.thumbs / "t1.jpg", b"t" * 100)
    write(e.thumbs / "deep" / "t2.jpg", b"u" * 50)
    e.daemon.start()
    _assert_both_exact(e, "the first sync")


def test_a_live_tree_removal_leaves_the_nested_area(env):
    _populate_and_start(env)
    shutil.rmtree(env.src / "media")
    _assert_both_exact(env, "the live stream")
    for t in env.targets.values():
        assert t.stat("media/a.jpg") is None and t.stat(f"{AREA}/t1.jpg") is not None


def test_a_live_directory_move_leaves_the_nested_area(env):
    _populate_and_start(env)
    os.rename(env.src / "media", env.src / "old")
    _assert_both_exact(env, "the live stream")
    for t in env.targets.values():
        assert t.stat("old/a.jpg") is not None and t.stat("old/thumbs/t1.jpg") is None


def test_a_catch_up_removal_leaves_the_nested_area(env):
    _populate_and_start(env)
    env.daemon.stop()
    shutil.rmtree(env.src / "media")
    env.daemon.start()
    _assert_both_exact(env, "the catch-up")
    assert env.log_text().count("catch-up done") >= 4   # each source, at each start
