"""Shared pieces of the fault-injection suite (issue 7).

Every scenario runs the real `mirrord run` process against all three real
targets (a local directory, S3 through SeaweedFS, a mirror host through rsync
over sshd), injects one fault, and ends with a byte-for-byte comparison of the
source with every target. Global state a test changes (inotify sysctls,
mounts) is restored in `finally`, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Iterator

import pytest

from mirrord import config as config_mod, targets as target_registry
from tests.e2e.helpers import Mirrord, diff, source_files, target_files
from tests.e2e.helpers import write_config as three_target_config
from tests.exactness import NotExact, wait_exact

EXCLUDE = "*.tmp, *.part, .*.swp, *~"
SYSCTL = Path("/proc/sys/fs/inotify")


def excluded(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatchcase(name, p.strip()) for p in EXCLUDE.split(","))


def write_config(tmp: Path, seaweedfs, sshd, **kwargs) -> Path:
    """A config with the three real targets, each on a fresh root/bucket."""
    return three_target_config(tmp, seaweedfs, sshd, exclude=EXCLUDE, **kwargs)


def converge(src: Path, target, *, timeout: float = 180.0,
             skip: Callable[[str], bool] | None = None) -> dict[str, bytes]:
    """Poll until `target` holds exactly the source's files, byte for byte; `skip` leaves
    paths out on both sides (what a target is known not to store)."""
    def keep(path: str) -> bool:
        return not excluded(path) and not (skip is not None and skip(path))
    deadline = time.monotonic() + timeout
    while True:
        want = {p: d for p, d in source_files(src).items() if keep(p)}
        try:
            have = {p: d for p, d in target_files(target).items() if keep(p)}
        except Exception as exc:  # noqa: BLE001 - a target still coming back: keep polling
            have = {"<listing failed>": str(exc).encode()}
        if want == have:
            return have
        if time.monotonic() > deadline:
            raise AssertionError(f"target {target.name} did not converge: {diff(want, have)}")
        time.sleep(0.3)


class Daemon(Mirrord):
    """Mirrord whose start() waits for *this* run's "running" line (the log file is
    appended to across restarts, so an earlier run's line must not count)."""

    def start(self) -> "Daemon":
        self._runs_before = self._runs()
        return super().start()

    def _runs(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("msg=running")
        except FileNotFoundError:
            return 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mirrord exited {self.proc.returncode}:\n{self.log.read_text()}")
            if self._runs() > self._runs_before:
                return
            time.sleep(0.05)
        raise AssertionError(f"mirrord did not start:\n{self.log.read_text()}")


class Env:
    """One test's source, daemon and open targets."""

    def __init__(self, tmp: Path, cfg: Path, *, names: tuple[str, ...] = ("local", "s3", "host")):
        self.tmp = tmp
        self.cfg = cfg
        self.src = tmp / "src"
        self.log = tmp / "mirrord.log"
        self.daemon = Daemon(cfg, self.log)
        self.targets = {}
        loaded = config_mod.load(cfg)
        for name in names:
            self.targets[name] = target_registry.create(loaded.targets[name])
            self.targets[name].open()

    def converge(self, timeout: float = 180.0, *, skip: Callable[[str], bool] | None = None) -> None:
        """Every target holds exactly the source's files (bounded polling)."""
        for target in self.targets.values():
            converge(self.src, target, timeout=timeout, skip=skip)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def drained(self) -> bool:
        """True when no target has a change pending; fails at once if the daemon died."""
        assert self.daemon.proc.poll() is None, self.log_text()[-3000:]
        return all(t["pending"] == 0 for t in self.daemon.status()["targets"].values())

    def assert_exact(self, *, timeout: float = 90.0, names: tuple[str, ...] | None = None,
                     excludes: Callable[..., bool] = excluded, by: str = "the live stream",
                     passes_allowed: bool = False, prefix: str = "") -> None:
        """The one "exact" check: the backlog drained, every target (of `names`; None: all)
        equal below `prefix` (a source's `dest`) to the source as `excludes` leaves it
        (tests/exactness.py), then a `mirrord reconcile --dry-run` proposing nothing on
        any target, so nothing was left for a reconcile to repair. Unless `passes_allowed` (a test whose daemon runs the
        pass at start), no reconcile pass may have run in the daemon at all: `by` (what
        alone was to make the targets exact) did it. Each wait is a bounded poll of
        `timeout` seconds; AssertionError names what differs."""
        poll(self.drained, timeout=timeout, what="the backlog drained")
        for name, target in self.targets.items():
            if names is None or name in names:
                try:
                    wait_exact(self.src, target, timeout=timeout, excluded=excludes, prefix=prefix)
                except NotExact as exc:
                    raise AssertionError(f"{exc}\n{self.history(exc.paths())}") from None
        plan = json.loads(self.daemon.cli("reconcile", "--dry-run", "--json", check=False).stdout)
        proposed = {name: (t.get("would_send", []), t.get("would_delete", []))
                    for name, t in plan["targets"].items()
                    if t.get("would_send") or t.get("would_delete")}
        assert proposed == {}, f"{by} left work for reconcile: {proposed}"
        if not passes_allowed:
            assert "reconcile pass queued" not in self.log_text(), f"a pass repaired what {by} missed"

    def history(self, paths: set[str], *, limit: int = 400) -> str:
        """The daemon's log lines (the last `limit`) naming one of `paths` or a directory
        above one: with log_level = debug (live_only_config) every event, op and subtree
        check that touched them, so an exactness failure seen once in CI can be followed."""
        names = {p.strip("/") for p in paths}
        for p in list(names):
            while "/" in p:
                p = p.rsplit("/", 1)[0]
                names.add(p)
        pattern = re.compile("|".join(rf"(?:path|src)={re.escape(n)}(?:[\s/]|$)"
                                      for n in sorted(names) if n) or "(?!)")
        lines = [line for line in self.log_text().splitlines() if pattern.search(line)]
        return "the daemon's log of those paths:\n" + "\n".join(lines[-limit:])

    def close(self) -> None:
        self.daemon.stop()
        for t in self.targets.values():
            t.close()


def live_only_config(tmp: Path, seaweedfs, sshd, *, watcher: str | None = None,
                     log_level: str = "info") -> Path:
    """The three-target config with `[reconcile] every = off` (only the pass that follows
    every start runs: whatever arrives later arrives by the live stream), `[mirrord]
    log_level` (debug: every event, op and subtree check logged, which Env.history shows
    on an exactness failure) and, when given, `[source] watcher = ...`."""
    cfg = write_config(tmp, seaweedfs, sshd)
    text = cfg.read_text()
    if watcher is not None:
        text = text.replace("[source:uploads]\n", f"[source:uploads]\nwatcher = {watcher}\n")
    text = text.replace("[mirrord]\n", f"[mirrord]\nlog_level = {log_level}\n", 1)
    cfg.write_text(text + "\n[reconcile]\nevery = off\n")
    return cfg


@pytest.fixture
def env(tmp_path, seaweedfs, sshd) -> Iterator[Env]:
    e = Env(tmp_path, write_config(tmp_path, seaweedfs, sshd))
    try:
        yield e
    finally:
        e.close()


@contextlib.contextmanager
def sysctl(name: str, value: int) -> Iterator[int]:
    """Set /proc/sys/fs/inotify/<name> for the block; the old value always comes back."""
    path = SYSCTL / name
    old = path.read_text().strip()
    try:
        path.write_text(f"{value}\n")
        yield int(old)
    finally:
        path.write_text(f"{old}\n")
        assert path.read_text().strip() == old


def _mounted(path: Path) -> bool:
    """Whether something is mounted at `path` (a file bind mount too). /proc/self/mounts
    writes a space, tab, newline or backslash in a mount point as an octal escape (\\040:
    getmntent(3)), so its fields are unescaped first; a name with a space was never found,
    and its mount was left behind."""
    target = os.fsencode(path.resolve())
    with open("/proc/self/mounts", "rb") as fh:
        return any(_unescape(line.split()[1]) == target for line in fh)


def _unescape(field: bytes) -> bytes:
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `path`, always unmounted afterwards (lazily if still busy)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        umount(path)


def umount(path: Path) -> None:
    if not _mounted(path):
        return
    for attempt in range(50):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(path)], check=True)


def poll(check: Callable[[], object], *, timeout: float = 60.0, what: str = "condition",
         interval: float = 0.2):
    """Return check()'s first truthy value; fail after `timeout` (bounded wait, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


# Root reads everything through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH. Without them (dropped
# from the bounding set before exec), a mode-000 file is unreadable for the daemon for real.
NO_DAC = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


class PrefixedMirrord(Daemon):
    """`mirrord run` started through a command prefix (here: setpriv)."""

    def __init__(self, config: Path, log: Path, prefix: list[str]):
        super().__init__(config, log)
        self.prefix = prefix

    def start(self) -> "PrefixedMirrord":
        import os
        from tests.e2e.helpers import MIRRORD
        self._runs_before = self._runs()
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([*self.prefix, MIRRORD, "-c", str(self.config), "run"],
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env}, start_new_session=True)
        self.wait_ready()
        return self
