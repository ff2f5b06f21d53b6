"""QuietFiles (mirrord/watch/fanotify_quiet.py): files modified without a close fall due
as writes once quiet, named by their directory's path at that time (its handle is
resolved then), so a directory renamed in between does not leave the write at the
old name (the churn test's stale content below a renamed directory)."""

from __future__ import annotations

from mirrord.watch.fanotify_quiet import QuietFiles

PATHS = {b"hD": "E", b"hX": None}   # handle -> the directory's path now (None: gone)


def due(q: QuietFiles, now: float, *, force: bool = False) -> list[str]:
    return q.due(now, 0.2, force=force, dir_path=PATHS.get,
                 excluded=lambda rel: rel.endswith(".tmp"))


def test_due_once_quiet_under_the_directory_s_path_now():
    q = QuietFiles()
    q.touch("D/f.bin", b"hD", 10.0)
    assert due(q, 10.1) == [] and q.times == {"D/f.bin": 10.0}
    assert due(q, 10.5) == ["E/f.bin"]      # D is called E by now
    assert q.times == {} and q.dirs == {}


def test_force_gone_directory_and_excluded_name():
    q = QuietFiles()
    q.touch("X/f.bin", b"hX", 10.0)         # its directory is gone: its rmtree says so
    q.touch("D/a.tmp", b"hD", 10.0)         # excluded where it stands now
    q.touch("D/g.bin", b"hD", 10.0)
    assert due(q, 10.0, force=True) == ["E/g.bin"] and q.times == {}


def test_keep_does_not_push_a_pending_file_back():
    q = QuietFiles()
    q.touch("D/f.bin", b"hD", 10.0)
    q.touch("D/f.bin", b"hD", 11.0, keep=True)
    assert q.times["D/f.bin"] == 10.0


def test_entries_follow_a_file_rename_and_a_directory_rename():
    q = QuietFiles()
    q.touch("D/f.bin", b"hD", 10.0)
    q.touch("D/sub/g.bin", b"hS", 10.0)
    q.touch("D2/h.bin", b"h2", 10.0)          # shares a prefix, not a directory
    q.moved("D", "E", b"hRoot", is_dir=True)
    assert set(q.times) == {"E/f.bin", "E/sub/g.bin", "D2/h.bin"}
    assert q.dirs["E/sub/g.bin"] == b"hS"      # the handles stay as they are
    q.moved("E/f.bin", "F/f2.bin", b"hF", is_dir=False)
    assert "F/f2.bin" in q.times and q.dirs["F/f2.bin"] == b"hF" and "E/f.bin" not in q.dirs
    q.drop("F/f2.bin")
    assert "F/f2.bin" not in q.times and "F/f2.bin" not in q.dirs
