"""The rsync target's private directory (control socket, staged copies of uploads) left by
a process killed with SIGKILL is removed by the next process that makes one there. Whether
its owner is gone is told by the flock its owner holds on the directory's lock file, never
by a pid or the control socket: a held lock, a directory with no lock file yet (being made,
or an earlier mirrord's), a lock file that is not a regular file, a symlink in place of the
directory or of the lock file, and another uid's directory are all left alone."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap

import pytest

from mirrord.targets.rsync import connection, private_dir
from tests.targets.conftest import make_rsync

CHILD = textwrap.dedent("""
    import sys, tempfile
    tempfile.tempdir = sys.argv[1]
    from mirrord.config import RsyncOptions, TargetConfig
    from mirrord import targets
    cfg = TargetConfig(name="host", type="rsync", workers=2, rsync=RsyncOptions(
        host=sys.argv[2], port=int(sys.argv[3]), user=sys.argv[4], path=sys.argv[5],
        ssh_key=sys.argv[6], known_hosts=sys.argv[7], strict_host_key_checking="yes"))
    t = targets.create(cfg)
    t.open()
    t.conn.ensure_master()
    with open(t.conn.private_dir() + "/staged-upload.jpg", "wb") as fh:
        fh.write(b"a user's bytes")
    print(t.conn.private_dir(), t.conn._conn.master.pid, flush=True)
    sys.stdin.read()
""")

# another process holding a lock file (argv[1]) exclusively until its stdin closes
HOLDER = textwrap.dedent("""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.read()
""")

OLD = 1_000_000_000     # an mtime long past (2001): age is no reason to sweep


def test_a_killed_processs_directory_is_kept_while_it_lives_then_removed_by_the_next(sshd):
    base = tempfile.mkdtemp(prefix="sw", dir="/tmp")   # short: a socket path's limit
    try:
        swept_by_the_next(sshd, base)
    finally:
        shutil.rmtree(base)


def swept_by_the_next(sshd, base: str) -> None:
    root = sshd.new_root()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(base), sshd.host, str(sshd.port), sshd.user,
         str(root), str(sshd.key_path), str(sshd.known_hosts)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd()))
    left, master = child.stdout.readline().split()
    lock = os.path.join(left, private_dir.LOCK_NAME)
    assert os.path.basename(left).startswith(private_dir.PRIVATE_PREFIX)
    # the lock is the child's alone: its ssh master (and any rsync) never inherits it
    held_by_master = [os.readlink(f"/proc/{master}/fd/{n}") for n in os.listdir(f"/proc/{master}/fd")]
    assert lock not in held_by_master
    assert connection.sweep_gone(base) == [] and os.path.exists(lock)   # alive: kept

    child.send_signal(signal.SIGKILL)
    child.wait()
    assert os.path.isdir(left) and os.listdir(left), "the kill left nothing to sweep"

    connection.tempfile.tempdir = str(base)
    t = make_rsync(sshd)
    try:
        t.open()
        t.conn.ensure_master()
        assert not os.path.exists(left)
        assert os.listdir(base) == [os.path.basename(t.conn.private_dir())]
        assert private_dir.LOCK_NAME in os.listdir(t.conn.private_dir())
    finally:
        connection.tempfile.tempdir = None
        t.close()
    assert os.listdir(base) == []


def made(base, name: str, lock: str | None = private_dir.LOCK_NAME):
    """A private directory `name` in `base` with a staged file and (unless `lock` is None)
    an unlocked lock file of that name; its mtime long past."""
    d = base / name
    d.mkdir(mode=0o700)
    (d / "staged").write_bytes(b"x")
    if lock:
        (d / lock).write_bytes(b"")
    os.utime(d, (OLD, OLD))
    return d


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_an_unlocked_directory_is_removed_though_no_pid_names_it_and_its_socket_answers(tmp_path):
    # the old sweep judged by the pid in the name and a probe of the control socket
    unnamed = made(tmp_path, f"{private_dir.PRIVATE_PREFIX}abcdefgh")
    answering = made(tmp_path, f"{private_dir.PRIVATE_PREFIX}{dead_pid()}-ctl")
    other = made(tmp_path, "other-abcdefgh")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as master:
        master.bind(str(answering / "ctl"))
        master.listen()
        removed = connection.sweep_gone(str(tmp_path))
    assert sorted(removed) == sorted([str(unnamed), str(answering)])
    assert [p.name for p in tmp_path.iterdir()] == [other.name]


def test_a_directory_whose_lock_another_process_holds_is_kept(tmp_path):
    # named like a process of another pid namespace (its pid not ours to see), no socket
    live = made(tmp_path, f"{private_dir.PRIVATE_PREFIX}{dead_pid()}-abc")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(live / private_dir.LOCK_NAME)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert connection.sweep_gone(str(tmp_path)) == []
        assert (live / "staged").exists()
    finally:
        holder.kill()
        holder.wait()
    assert connection.sweep_gone(str(tmp_path)) == [str(live)]   # its owner is gone now


def test_a_directory_with_no_lock_file_is_kept_however_old(tmp_path):
    # being made (its maker not at its open yet), or an earlier mirrord's (pid-named)
    bare = made(tmp_path, f"{private_dir.PRIVATE_PREFIX}{dead_pid()}-new", lock=None)
    assert connection.sweep_gone(str(tmp_path)) == []
    assert sorted(os.listdir(bare)) == ["staged"]


def test_a_directory_whose_maker_died_before_linking_its_lock_is_removed(tmp_path):
    left = made(tmp_path, f"{private_dir.PRIVATE_PREFIX}abcdefgh", lock=private_dir.TMP_LOCK_NAME)
    assert connection.sweep_gone(str(tmp_path)) == [str(left)]


def test_a_directory_whose_maker_holds_its_unlinked_lock_is_kept(tmp_path):
    being_made = made(tmp_path, f"{private_dir.PRIVATE_PREFIX}{dead_pid()}-mk",
                      lock=private_dir.TMP_LOCK_NAME)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(being_made / private_dir.TMP_LOCK_NAME)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert connection.sweep_gone(str(tmp_path)) == []
        assert (being_made / "staged").exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("sweep", ["done", "under_way"])
def test_a_maker_overtaken_by_a_sweep_makes_another_directory(tmp_path, monkeypatch, sweep):
    """A sweep that takes the maker's temporary lock file between its open and its flock
    has removed the directory (done) or still holds the lock (under way): the maker
    gives that one up and makes another, locked; it never shares one."""
    real_try_flock, overtaken, held = private_dir.try_flock, [], []

    def late_flock(fd, how):
        if not overtaken:
            (first,) = [p for p in tmp_path.iterdir()]
            overtaken.append(str(first))
            if sweep == "done":
                monkeypatch.setattr(private_dir, "try_flock", real_try_flock)
                assert private_dir.sweep_gone(str(tmp_path)) == [str(first)]
            else:
                h = os.open(first / private_dir.TMP_LOCK_NAME, os.O_RDONLY)
                held.append(h)
                fcntl.flock(h, fcntl.LOCK_EX)
        return real_try_flock(fd, how)

    monkeypatch.setattr(private_dir, "try_flock", late_flock)
    path, fd = private_dir.make_private(str(tmp_path))
    monkeypatch.setattr(private_dir, "try_flock", real_try_flock)
    try:
        assert len(overtaken) == 1 and overtaken[0] != path
        assert os.listdir(tmp_path) == [os.path.basename(path)]
        assert os.listdir(path) == [private_dir.LOCK_NAME]
        assert private_dir.sweep_gone(str(tmp_path)) == []          # held by fd
    finally:
        os.close(fd)
        for h in held:
            os.close(h)
    assert private_dir.sweep_gone(str(tmp_path)) == [path]


def test_the_lock_fd_is_not_inherited_by_children(tmp_path):
    path, fd = private_dir.make_private(str(tmp_path))
    try:
        assert not os.get_inheritable(fd)
        out = subprocess.run(["ls", "-l", "/proc/self/fd/"], close_fds=False,
                             capture_output=True, text=True, check=True).stdout
        assert os.path.join(path, private_dir.LOCK_NAME) not in out
    finally:
        os.close(fd)


@pytest.mark.parametrize("shape", ["directory", "fifo", "socket", "symlink"])
def test_a_lock_file_that_is_not_a_regular_file_keeps_its_directory(tmp_path, shape):
    outside = tmp_path / "outside"
    outside.mkdir()
    free = outside / "free.lock"                   # a lock nobody holds: following it would sweep
    free.write_bytes(b"")
    base = tmp_path / "base"
    base.mkdir()
    d = made(base, f"{private_dir.PRIVATE_PREFIX}{dead_pid()}-{shape}", lock=None)
    lock = d / private_dir.LOCK_NAME
    if shape == "directory":
        lock.mkdir()
    elif shape == "fifo":
        os.mkfifo(lock)
    elif shape == "symlink":
        lock.symlink_to(free)
    else:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(lock))
    assert connection.sweep_gone(str(base)) == []
    assert (d / "staged").exists() and free.exists() and os.path.lexists(lock)


def test_a_symlink_in_place_of_the_directory_is_not_followed(tmp_path):
    target = made(tmp_path, "elsewhere")         # unlocked: following the link would sweep it
    base = tmp_path / "base"
    base.mkdir()
    link = base / f"{private_dir.PRIVATE_PREFIX}{dead_pid()}-lnk"
    link.symlink_to(target)
    assert connection.sweep_gone(str(base)) == []
    assert link.is_symlink() and (target / "staged").exists()


def test_another_uids_directory_is_not_touched(tmp_path):
    assert os.getuid() == 0, "simulated with chown, which needs root"
    theirs = made(tmp_path, f"{private_dir.PRIVATE_PREFIX}{dead_pid()}-uid")
    os.chown(theirs, 65534, 65534)
    assert connection.sweep_gone(str(tmp_path)) == []
    assert (theirs / "staged").exists() and (theirs / private_dir.LOCK_NAME).exists()


@pytest.mark.parametrize("vanishing", ["ctl", "subdir"])
def test_an_entry_gone_under_the_sweep_does_not_stop_it(tmp_path, monkeypatch, vanishing):
    """The dead owner's ssh master, orphaned, unlinks its control socket as it exits,
    often while the next process sweeps: the sweep goes on past what is gone and removes
    the directory (it stopped at the first FileNotFoundError and left it, CI)."""
    left = made(tmp_path, f"{private_dir.PRIVATE_PREFIX}abcdefgh")
    if vanishing == "ctl":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(left / "ctl"))
    else:
        (left / "subdir").mkdir()
        (left / "subdir" / "staged").write_bytes(b"x")
    real_unlink, real_rmdir, taken = os.unlink, os.rmdir, []

    def raced(real):
        def call(path, *a, dir_fd=None, **kw):
            if os.fsdecode(path) == vanishing and not taken:   # the master got there first
                taken.append(path)
                shutil.rmtree(left / vanishing) if vanishing == "subdir" else real_unlink(left / vanishing)
            return real(path, *a, dir_fd=dir_fd, **kw)
        return call

    monkeypatch.setattr(os, "unlink", raced(real_unlink))
    monkeypatch.setattr(os, "rmdir", raced(real_rmdir))
    if vanishing == "subdir":           # gone before shutil opens it
        real_open = os.open

        def open_raced(path, flags, mode=0o777, *, dir_fd=None):
            if os.fsdecode(path) == "subdir" and not taken:
                taken.append(path)
                shutil.rmtree(left / "subdir")
            return real_open(path, flags, mode, dir_fd=dir_fd)
        monkeypatch.setattr(os, "open", open_raced)
    assert connection.sweep_gone(str(tmp_path)) == [str(left)]
    assert taken and not left.exists()
