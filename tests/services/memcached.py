"""Two real memcached servers on free loopback ports.

`memcached_pair` (session scope) gives `.servers` (a list of (host, port)),
`.config_value` (the `memcached =` INI value), `.stop(i)`, `.start(i)` and
`.start(i, disable_flush=True)` (memcached -F: flush_all refused). The
function-scoped `memcached` fixture restarts any server a test stopped or
reconfigured. Every process is killed at session end.

`memcached_socket` (function scope) is one more real memcached listening only
on a UNIX socket (memcached -s PATH), `.path` and `.config_value`; killed and
its directory removed after the test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass, field

import pytest

MEMCACHED = "/usr/bin/memcached"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"memcached on port {port} did not start")


@dataclass
class MemcachedPair:
    ports: list[int]
    procs: list[subprocess.Popen | None] = field(default_factory=list)
    flags: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def servers(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", p) for p in self.ports]

    @property
    def config_value(self) -> str:
        return ", ".join(f"{h}:{p}" for h, p in self.servers)

    def name(self, i: int) -> str:
        return f"127.0.0.1:{self.ports[i]}"

    def start(self, i: int, *, disable_flush: bool = False) -> None:
        extra = ("-F",) if disable_flush else ()
        if self.procs[i] is not None and self.procs[i].poll() is None:
            if self.flags[i] == extra:
                return
            self.stop(i)
        argv = [MEMCACHED, "-l", "127.0.0.1", "-p", str(self.ports[i]), "-U", "0", "-m", "16",
                "-c", "64", *extra]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        self.procs[i] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.flags[i] = extra
        _wait_listening(self.ports[i])

    def stop(self, i: int) -> None:
        proc = self.procs[i]
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self.procs[i] = None

    def healthy(self) -> None:
        for i in range(len(self.ports)):
            self.start(i)

    def stop_all(self) -> None:
        for i in range(len(self.ports)):
            self.stop(i)


@pytest.fixture(scope="session")
def memcached_pair():
    ports = [_free_port()]
    while len(ports) < 2:
        port = _free_port()
        if port not in ports:
            ports.append(port)
    pair = MemcachedPair(ports=ports)
    pair.procs = [None, None]
    pair.flags = [(), ()]
    try:
        pair.healthy()
        yield pair
    finally:
        pair.stop_all()


@pytest.fixture
def memcached(memcached_pair: MemcachedPair) -> MemcachedPair:
    """The pair with both servers up and flush enabled, before and after the test."""
    memcached_pair.healthy()
    yield memcached_pair
    memcached_pair.healthy()


@dataclass
class MemcachedSocket:
    path: Path
    proc: subprocess.Popen | None = None

    @property
    def config_value(self) -> str:
        return str(self.path)

    def start(self) -> None:
        # -a 0666: the socket's mode, so the test (root or not) can connect after -u nobody
        argv = [MEMCACHED, "-s", str(self.path), "-a", "0666", "-m", "16", "-c", "64"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"memcached -s {self.path} exited: "
                                   f"{self.proc.stderr.read().decode(errors='replace')}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.path))
                    return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"memcached on {self.path} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def memcached_socket():
    """A real memcached on a UNIX socket only (no TCP port)."""
    base = Path(tempfile.mkdtemp(prefix="mirrord-mc-"))
    base.chmod(0o777)   # memcached creates the socket after dropping to nobody
    server = MemcachedSocket(base / "memcached.sock")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
