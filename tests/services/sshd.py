"""A real OpenSSH server on a free loopback port, for the rsync target's tests.

One sshd per test session, with its own host key, its own client key (the only
key it accepts) and every file it writes kept in a private directory. The
"remote" is this same machine: `new_root()` hands out a fresh empty directory
to use as a target root. `stop()` takes the whole server down, open
connections included, the way a host or network outage would; `start()`
brings it back on the same port with the same host key.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mirrord-test",
                    "-f", str(path)], check=True, stdin=subprocess.DEVNULL)


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (sshd's connection processes start sessions of their own)."""
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SshServer:
    """The running sshd and everything a client needs to reach it."""

    host = "127.0.0.1"

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.user = getpass.getuser()
        self.key_path = base / "client_ed25519"
        self.known_hosts = base / "known_hosts"
        self.log_path = base / "sshd.log"
        self._roots = base / "roots"
        self._roots.mkdir()
        self._proc: subprocess.Popen | None = None
        self._config = base / "sshd_config"
        self._prepare()

    def _prepare(self) -> None:
        host_key = self.base / "host_ed25519"
        _keygen(host_key)
        _keygen(self.key_path)
        authorized = self.base / "authorized_keys"
        authorized.write_bytes(Path(f"{self.key_path}.pub").read_bytes())
        home = self.base / "home"
        home.mkdir()
        host_pub = Path(f"{host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self._config.write_text("\n".join([
            f"ListenAddress {self.host}",
            f"Port {self.port}",
            f"HostKey {host_key}",
            f"PidFile {self.base / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "PrintMotd no",
            "UseDNS no",
            "LogLevel INFO",
            # An empty HOME for sessions: a mirror account has a plain shell, while the
            # developer's ~/.bashrc here (pyenv init) costs ~90 ms per session.
            f"SetEnv HOME={home}",
            "",
        ]))
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        log = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self._config)],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True)
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self._proc.returncode}: {self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"sshd did not answer on port {self.port}: {self.log()}")

    def stop(self) -> None:
        """Kill the listener and every connection it serves (an outage, not a graceful stop)."""
        if self._proc is None:
            return
        doomed = _descendants(self._proc.pid)
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)   # its own process group (new session)
        except ProcessLookupError:
            pass
        self._proc.wait()
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._proc = None

    # ---------------------------------------------------------------- helpers
    def new_root(self) -> Path:
        """A fresh empty directory on the 'remote' (this machine) to use as a target root."""
        return Path(tempfile.mkdtemp(prefix="root-", dir=self._roots))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
