"""Running the real `mirrord` process and comparing a source with its targets byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from mirrord import config as config_mod
from mirrord import targets as target_registry
from mirrord.treewalk import walk

MIRRORD = str(Path(sys.executable).with_name("mirrord"))


def files_below(root: Path) -> list[Path]:
    """The regular files below `root` (symlinks not followed; none when it is missing),
    read while a daemon may be removing them: mirrord.treewalk.walk skips an entry or a
    directory that vanishes mid-walk, where Path.rglob raised FileNotFoundError in a
    polled check (a two-worker run)."""
    return [root / e.path for e in walk(str(root), include_dirs=False)]


def source_files(root: Path, excluded=None) -> dict[str, bytes]:
    out = {}
    for entry in walk(str(root), excluded=excluded, include_dirs=False):
        try:
            out[entry.path] = (root / entry.path).read_bytes()
        except FileNotFoundError:
            continue
    return out


def target_files(target) -> dict[str, bytes]:
    out = {}
    for entry in target.list():
        if entry.is_dir:
            continue
        data = target.read(entry.path)
        if data is not None:
            out[entry.path] = data
    return out


def diff(src: dict[str, bytes], dst: dict[str, bytes]) -> dict[str, list[str]]:
    return {
        "missing": sorted(set(src) - set(dst))[:20],
        "extra": sorted(set(dst) - set(src))[:20],
        "different": sorted(p for p in set(src) & set(dst) if src[p] != dst[p])[:20],
    }


def wait_converged(root: Path, target, *, timeout: float = 60.0, excluded=None,
                   prefix: str = "") -> dict[str, bytes]:
    """Poll until the target holds exactly the source's files (bounded; no timing asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        src = source_files(root, excluded)
        if prefix:
            src = {f"{prefix}/{k}": v for k, v in src.items()}
        try:
            dst = target_files(target)
        except Exception as exc:  # noqa: BLE001 - a target still coming back: keep polling
            dst = {"<listing failed>": str(exc).encode()}
        if src == dst:
            return dst
        if time.monotonic() > deadline:
            raise AssertionError(f"target {target.name} did not converge: {diff(src, dst)}")
        time.sleep(0.2)


@dataclass
class Mirrord:
    """A `mirrord run` subprocess on a config file."""

    config: Path
    log: Path
    proc: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)
    _log_from: int = 0   # where this run's part of the (appended) log begins

    def start(self) -> "Mirrord":
        # the log is appended to across restarts: readiness is read only from what this
        # run writes (an earlier run's "msg=running" made a restart look ready at once, and
        # a stop sent before the daemon's signal handlers were set ended it with -15)
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([MIRRORD, "-c", str(self.config), "run"], stdout=logf,
                                     stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                                     start_new_session=True)
        logf.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mirrord exited {self.proc.returncode}:\n{self.log.read_text()}")
            with open(self.log, "rb") as fh:
                fh.seek(self._log_from)
                if b"msg=running" in fh.read():
                    return
            time.sleep(0.05)
        raise AssertionError(f"mirrord did not start:\n{self.log.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        return self.kill(signal.SIGTERM)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([MIRRORD, "-c", str(self.config), *args], capture_output=True,
                             text=True, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"mirrord {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}")
        return res

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout)


@contextmanager
def local_mirror(tmp: Path, source_keys: str = "", *, more: str = "",
                 env: dict | None = None) -> Iterator[tuple[Mirrord, object]]:
    """`mirrord run` of `tmp`/src (made before, with what it should hold) to a local
    target at `tmp`/mirror, started and converged: (the daemon, the target, opened). The
    source is [source:uploads], the target [target:local]; `source_keys`: more lines of
    the source's section ("watcher = fanotify\nalarm_deletes = 5"); `more`: sections
    after them ("[reconcile]\nevery = off"); `env`: the daemon's extra environment.
    Stopped on exit."""
    cfg = tmp / "mirrord.ini"
    cfg.write_text("[mirrord]\nstate_dir = ./state\nheartbeat_interval = 200ms\n\n"
                   "[source:uploads]\npath = ./src\ntargets = local\n" + source_keys +
                   "\n\n[target:local]\ntype = local\npath = ./mirror\n\n" + more)
    daemon = Mirrord(cfg, tmp / "mirrord.log", env=env or {})
    target = target_registry.create(config_mod.load(cfg).targets["local"])
    target.open()
    try:
        daemon.start()
        wait_converged(tmp / "src", target)
        yield daemon, target
    finally:
        daemon.stop()
        target.close()


def open_targets(config_path: Path) -> dict:
    cfg = config_mod.load(config_path)
    out = {}
    for name, tcfg in cfg.targets.items():
        t = target_registry.create(tcfg)
        t.open()
        out[name] = t
    return out


def write_config(tmp: Path, seaweedfs, sshd, *, exclude: str, source: Path | None = None,
                 state_dir: str = "./state", local_path: str = "./mirror",
                 extra: str = "", mode: int = 0o600) -> Path:
    """A config with the three real targets, each on a fresh root/bucket."""
    src = source or tmp / "src"
    src.mkdir(exist_ok=True)
    bucket = seaweedfs.new_bucket()
    host_root = sshd.new_root()
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = {state_dir}
workers = 4
heartbeat_interval = 500ms
{extra}

[source:uploads]
path = {src}
targets = local, s3, host
exclude = {exclude}

[target:local]
type = local
path = {local_path}

[target:s3]
type = s3
bucket = {bucket}
prefix = up/
endpoint_url = {seaweedfs.endpoint_url}
region = {seaweedfs.region}
access_key_id = {seaweedfs.access_key}
secret_access_key = {seaweedfs.secret_key}
addressing_style = path

[target:host]
type = rsync
host = {sshd.host}
port = {sshd.port}
user = {sshd.user}
path = {host_root}
ssh_key = {sshd.key_path}
known_hosts = {sshd.known_hosts}
strict_host_key_checking = yes
""")
    cfg.chmod(mode)
    return cfg
