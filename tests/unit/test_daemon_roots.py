"""When a lost source root counts as back (mirrord.daemon_roots.root_back), and the
stand-in watcher of a root missing at start. The daemon's side runs on real mounts in
tests/reliability/test_source_root_back.py."""

from __future__ import annotations

import os
import select

from mirrord.daemon_roots import AbsentRoot, root_back


def _identity(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def test_a_missing_root_or_a_file_in_its_place_is_not_back(tmp_path):
    assert not root_back(str(tmp_path / "gone"), None)
    (tmp_path / "f").write_text("x")
    assert not root_back(str(tmp_path / "f"), _identity(tmp_path / "f"))


def test_the_very_directory_is_back_even_empty(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert root_back(str(root), _identity(root))


def test_another_empty_directory_is_not_back_a_non_empty_one_is(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    seen = _identity(root)
    root.rename(tmp_path / "old")
    root.mkdir()                                   # what an unmount leaves: empty, another
    assert not root_back(str(root), seen)
    assert not root_back(str(root), None)          # never seen (missing at start): same rule
    (root / ".hidden").write_text("")               # anything at all in it
    assert root_back(str(root), seen) and root_back(str(root), None)


def test_a_symlinked_root_is_judged_by_what_it_points_at(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert root_back(str(tmp_path / "link"), _identity(real))
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert not root_back(str(tmp_path / "dangling"), None)


def test_the_stand_in_watcher_reports_nothing_and_never_wakes_the_loop():
    w = AbsentRoot()
    try:
        ready, _, _ = select.select([w.fileno()], [], [], 0)
        assert ready == []
        assert (w.read(0), w.settle(), w.rewatch(), w.unwatched_paths(5)) == ([], [], [], [])
        assert (w.watched, w.unwatched, w.next_deadline()) == (0, 0, None)
    finally:
        w.close()
    w.close()                                      # twice: nothing raised
