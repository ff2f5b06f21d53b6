"""When a lost source root counts as back (mirrord.daemon_roots.root_back), and the
stand-in watcher of a root missing at start. The daemon's side runs on real mounts in
tests/reliability/test_source_root_back.py."""

from __future__ import annotations

import select

from mirrord.daemon_roots import AbsentRoot, root_back


def test_a_missing_root_or_a_file_in_its_place_is_not_back(tmp_path):
    assert not root_back(str(tmp_path / "gone"))
    (tmp_path / "f").write_text("x")
    assert not root_back(str(tmp_path / "f"))


def test_an_empty_directory_is_never_back_whatever_its_numbers(tmp_path):
    """An empty tmpfs mounted again shows the st_dev the kernel freed and inode 1, and
    ext4 gives a directory made again the inode it freed: identity proves nothing."""
    root = tmp_path / "root"
    root.mkdir()
    assert not root_back(str(root))                 # the very directory, empty
    root.rmdir()
    root.mkdir()
    assert not root_back(str(root))
    (root / ".hidden").write_text("")               # anything at all in it
    assert root_back(str(root))


def test_a_symlinked_root_is_judged_by_what_it_points_at(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "x").write_text("x")
    (tmp_path / "link").symlink_to(real)
    assert root_back(str(tmp_path / "link"))
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert not root_back(str(tmp_path / "dangling"))


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
