"""The rsync target's private directory (control socket, staged copies of uploads) left by
a process killed with SIGKILL is removed by the next process that makes one there; one of
a live process, of another name, or with a master still answering is left alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import shutil
import sys
import tempfile
import textwrap
import time

from mirrord.targets.rsync import connection
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
    print(t.conn.private_dir(), flush=True)
    sys.stdin.read()
""")


def killed_child_dir(sshd, base) -> str:
    """The private directory of a real mirrord target in a child, its master running,
    after the child is killed with SIGKILL (no finaliser runs)."""
    root = sshd.new_root()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(base), sshd.host, str(sshd.port), sshd.user,
         str(root), str(sshd.key_path), str(sshd.known_hosts)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=os.getcwd()))
    private = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10   # its ssh master ends once the remote sees EOF
    while os.path.exists(os.path.join(private, "ctl")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return private


def test_a_killed_processs_directory_is_removed_by_the_next(sshd):
    base = tempfile.mkdtemp(prefix="sw", dir="/tmp")   # short: a socket path's limit
    try:
        swept_by_the_next(sshd, base)
    finally:
        shutil.rmtree(base)


def swept_by_the_next(sshd, base: str) -> None:
    left = killed_child_dir(sshd, base)
    assert os.path.isdir(left) and os.listdir(left), "the kill left nothing to sweep"
    assert os.path.basename(left).startswith(f"{connection.PRIVATE_PREFIX}")

    connection.tempfile.tempdir = str(base)
    t = make_rsync(sshd)
    try:
        t.open()
        t.conn.ensure_master()
        assert not os.path.exists(left)
        assert os.listdir(base) == [os.path.basename(t.conn.private_dir())]
    finally:
        connection.tempfile.tempdir = None
        t.close()
    assert os.listdir(base) == []


def test_only_gone_processes_directories_of_ours_are_removed(tmp_path):
    done = subprocess.Popen(["true"])
    done.wait()
    gone = tmp_path / f"{connection.PRIVATE_PREFIX}{done.pid}-abc"
    live = tmp_path / f"{connection.PRIVATE_PREFIX}{os.getpid()}-abc"
    unnamed = tmp_path / f"{connection.PRIVATE_PREFIX}abcdefgh"      # no pid in the name
    other = tmp_path / f"other-{done.pid}-abc"
    link = tmp_path / f"{connection.PRIVATE_PREFIX}{done.pid}-lnk"
    answering = tmp_path / f"{connection.PRIVATE_PREFIX}{done.pid}-ctl"
    for d in (gone, live, unnamed, other, answering):
        d.mkdir()
        (d / "staged").write_bytes(b"x")
    link.symlink_to(live)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as master:
        master.bind(str(answering / "ctl"))
        master.listen()
        removed = connection.sweep_gone(str(tmp_path))
    assert removed == [str(gone)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, unnamed, other, link, answering))
    assert (live / "staged").exists()
    # a socket nobody listens on any more is a dead master: swept
    assert connection.sweep_gone(str(tmp_path)) == [str(answering)]
