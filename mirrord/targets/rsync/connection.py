"""The rsync target's one persistent SSH connection to the mirror host.

SshConnection owns a private 0700 directory holding the control socket of one
ssh master connection (started in the foreground as our child, so it can be
watched and restarted cheaply, and dies with the daemon: its remote command
reads our end of a pipe). Every rsync run and every remote command is a
multiplexed session over that connection (ControlMaster=no, ControlPath): no
handshake per batch, and at most MAX_SESSIONS at once (sshd's MaxSessions).

The directory (mirrord-ssh-XXXX) holds a lock file we keep flock'ed while the
connection lives: a process killed with SIGKILL (the OOM killer, kill -9) cannot remove
its own, so the next one to make a directory there removes those whose lock it can
take, staged copies of uploads included (private_dir.py: sweep_gone, make_private).

Cipher choice: AES-GCM first where the CPU has AES instructions (cpu_has_aes);
an ssh_command with its own -c or -o Ciphers wins.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Iterator

from mirrord.config import RsyncOptions
from mirrord.errors import RetryableError
from mirrord.targets.rsync.private_dir import make_private, sweep_gone
from mirrord.targets.rsync.remote import EXIT_NO_ROOT, classify_stderr, tail

MAX_SESSIONS = 8            # sshd allows 10 sessions per connection by default; one is the master's
# of those 8, one is kept for .mirrord/ meta reads and writes (the heartbeat and the read
# before it): with every session in a long transfer, a heartbeat waiting for one went
# stale as a dead daemon's; the transfers share the others
TRANSFER_SESSIONS = MAX_SESSIONS - 1
SHORT_TIMEOUT = 300.0       # seconds for a remote stat/read/mkdir; dead links are caught sooner
# OpenSSH's default ciphers with AES-GCM first. On a CPU with AES instructions it costs
# about half the CPU of chacha20-poly1305 (ssh's first choice) on both ends: measured on a
# 693 MiB first sync over loopback, 1.3 CPU-seconds less and 0.75-1 s sooner. Same set as the
# default, so any server that took the default still agrees; an ssh_command with its own
# -c or -o Ciphers wins (ssh keeps the first value it is given for an option).
AES_FIRST_CIPHERS = ("aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
                     "aes128-ctr,aes192-ctr,aes256-ctr")


@functools.cache
def cpu_has_aes(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AES instructions (x86 'flags', arm64 'Features'): then AES-GCM
    is the cheaper SSH cipher. Unknown is False, which leaves ssh's own order."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return "aes" in value.split()
    except OSError:
        pass
    return False


@dataclass
class _Conn:
    """What a finaliser must clean up if the connection is dropped without close()."""

    dir: str | None = None
    lock_fd: int = -1           # the flock on dir's lock file, held until dir is removed
    master: subprocess.Popen | None = None

    def stop_master(self) -> None:
        m, self.master = self.master, None
        if m is None:
            return
        with contextlib.suppress(OSError):
            m.stdin.close()
        if m.poll() is None:
            m.terminate()
            try:
                m.wait(2)
            except subprocess.TimeoutExpired:
                m.kill()
                m.wait()

    def cleanup(self) -> None:
        self.stop_master()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        fd, self.lock_fd = self.lock_fd, -1
        if fd >= 0:                 # only now: a sweep never sees the directory unlocked
            with contextlib.suppress(OSError):
                os.close(fd)


class SshConnection:
    """One ssh master to `opts.host` and the sessions multiplexed over it; thread-safe.
    `where` names the target in messages (never a credential)."""

    def __init__(self, opts: RsyncOptions, where: str):
        self.opts = opts
        self.where = where
        self._conn = _Conn()
        self._finalizer = weakref.finalize(self, self._conn.cleanup)
        self._lock = threading.Lock()
        self._sessions = threading.BoundedSemaphore(TRANSFER_SESSIONS)
        self._meta_session = threading.BoundedSemaphore(1)

    def ssh_base(self) -> list[str]:
        """ssh and its options (cipher order, timeouts, key, known hosts, control path)."""
        o = self.opts

        def esc(path: object) -> str:   # ssh expands %-tokens in these options
            text = str(path).replace("%", "%%")
            return f'"{text}"' if " " in text else text

        alive = max(1, round(o.connect_timeout / 2))
        argv = shlex.split(o.ssh_command)
        if cpu_has_aes():
            argv += ["-o", f"Ciphers={AES_FIRST_CIPHERS}"]
        argv += [
            "-p", str(o.port), "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            "-o", f"ConnectTimeout={max(1, math.ceil(o.connect_timeout))}",
            "-o", f"ServerAliveInterval={alive}", "-o", "ServerAliveCountMax=3",
            "-o", f"StrictHostKeyChecking={o.strict_host_key_checking}",
            "-o", f"ControlPath={esc(self.ctl_path())}",
        ]
        if o.ssh_key:
            # -i is a plain argument (no config-line dequoting): only %-tokens need escaping
            argv += ["-o", "IdentitiesOnly=yes", "-i", str(o.ssh_key).replace("%", "%%")]
        if o.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={esc(o.known_hosts)}"]
        if o.user:
            argv += ["-l", o.user]
        return argv

    def ctl_path(self) -> str:
        """The control socket, in the private directory (made on first use)."""
        if self._conn.dir is None:
            base = tempfile.gettempdir()
            base = base if len(base) < 40 else "/tmp"   # sockets need short paths
            sweep_gone(base)
            self._conn.dir, self._conn.lock_fd = make_private(base)
        return os.path.join(self._conn.dir, "ctl")

    def private_dir(self) -> str:
        """The private 0700 directory (rsync's staging of files given by path lives there)."""
        return os.path.dirname(self.ctl_path())

    def client_argv(self) -> list[str]:
        """ssh for one session over the master (also rsync's -e)."""
        return self.ssh_base() + ["-o", "ControlMaster=no", "-T"]

    def ensure_master(self) -> None:
        """Start the master unless it runs; RetryableError/PermanentError when it cannot."""
        with self._lock:
            m = self._conn.master
            if m is not None and m.poll() is None and os.path.exists(self.ctl_path()):
                return
            self._start_master()

    def _start_master(self) -> None:
        self._conn.stop_master()
        ctl = self.ctl_path()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ctl)
        log_path = os.path.join(self._conn.dir, "master.log")
        argv = self.ssh_base() + ["-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-T",
                                  self.opts.host, "exec cat >/dev/null"]
        with open(log_path, "wb") as log:
            master = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=log)
        self._conn.master = master
        deadline = time.monotonic() + self.opts.connect_timeout + 5
        while master.poll() is None and time.monotonic() < deadline:
            if os.path.exists(ctl):
                return
            time.sleep(0.005)
        self._conn.stop_master()
        with open(log_path, "rb") as fh:
            why = fh.read()
        raise classify_stderr(why, f"{self.where}: cannot connect")

    @contextlib.contextmanager
    def session(self, *, meta: bool = False) -> Iterator[None]:
        """One of the TRANSFER_SESSIONS session slots, with the master running; `meta`: the
        one slot kept for .mirrord/ meta reads and writes instead, never taken by the
        transfers (MAX_SESSIONS in all)."""
        self.ensure_master()
        with self._meta_session if meta else self._sessions:
            yield

    def run(self, script: bytes, data: bytes = b"", timeout: float = SHORT_TIMEOUT, *,
            meta: bool = False) -> subprocess.CompletedProcess:
        """Run a shell script on the mirror host with `data` on stdin; `timeout` in seconds;
        `meta`: in the meta slot (session()). RetryableError on a timeout, ssh's own failure
        (exit 255, classified by its stderr) or a missing target root (EXIT_NO_ROOT); any
        other exit is the caller's to judge."""
        argv = self.client_argv() + [self.opts.host, script]
        with self.session(meta=meta):
            try:
                proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RetryableError(f"{self.where}: remote command timed out") from None
        if proc.returncode == 255:
            raise classify_stderr(proc.stderr, f"{self.where}: ssh failed")
        if proc.returncode == EXIT_NO_ROOT:
            # the script's own line: not there, or root_guard's refusal
            raise RetryableError(f"{self.where}: {tail(proc.stderr) or 'the target root is not there'}")
        return proc

    def close(self) -> None:
        """Stop the master and remove the private directory; safe to call twice."""
        with self._lock:
            self._conn.cleanup()
