"""What every workload shares: sizes, services, processes, statistics and result rows.

Rules the whole suite keeps:
- Loopback only: SeaweedFS and sshd are the test suite's own service classes
  (tests/services), started once per run on free ports.
- Every process the bench starts runs in its own process group and is
  registered here; `Context.close()` (called from a finally block) stops
  every group still alive, so nothing outlives a run, not even on Ctrl-C.
- Nothing here asserts a time. A run that fails records the error in its row
  and the suite goes on with the next workload.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MIRRORD = str(VENV_BIN / "mirrord")


# ---------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Profile:
    """Sizes of every workload for one mode (--quick, default, --full)."""

    name: str
    reps: int
    # 1. live latency: (files per second, seconds) pairs
    latency_rates: tuple[tuple[int, float], ...]
    # 2. burst to S3
    burst_files: int
    # 3. initial sync: files, directories, smallest and largest size
    initial_files: int
    initial_dirs: int
    initial_min: int
    initial_max: int
    # 4. start-up on a large tree
    startup_files: int
    startup_dirs: int
    # 6. one large file to S3
    large_file: int


# the targets the burst and initial-sync workloads compare on (--targets): mirrord's S3
# target vs rclone, its rsync target over the loopback sshd vs rsync over ssh, its local
# target vs a local rsync
TARGET_KINDS = ("s3", "ssh", "local")

PROFILES = {
    "quick": Profile("quick", reps=1, latency_rates=((200, 2.0), (1000, 1.0)),
                     burst_files=500, initial_files=2_000, initial_dirs=20,
                     initial_min=1 << 10, initial_max=64 << 10,
                     startup_files=20_000, startup_dirs=400, large_file=64 << 20),
    "default": Profile("default", reps=3, latency_rates=((200, 10.0), (1000, 5.0)),
                       burst_files=5_000, initial_files=5_000, initial_dirs=50,
                       initial_min=1 << 10, initial_max=1 << 20,
                       startup_files=100_000, startup_dirs=2_000, large_file=512 << 20),
    "full": Profile("full", reps=3, latency_rates=((200, 10.0), (1000, 5.0)),
                    burst_files=5_000, initial_files=200_000, initial_dirs=2_000,
                    initial_min=1 << 10, initial_max=1 << 20,
                    startup_files=1_000_000, startup_dirs=20_000, large_file=2 << 30),
}


# ---------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return percentile(vals, 50) if vals else math.nan


# ---------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the table: a metric measured for mirrord and for one peer, several times."""

    workload: str
    case: str
    metric: str                 # e.g. "p99 ms", "seconds", "peak RSS MiB"
    peer: str                   # the peer's name, "" when there is none
    mirrord: list[float] = field(default_factory=list)
    other: list[float] = field(default_factory=list)
    lower_is_better: bool = True
    notes: list[str] = field(default_factory=list)
    # CPU seconds per 1,000 files, one figure per repetition (bench/ack.py record()):
    # "mirrord" / "other" for the tool's process tree, "server_mirrord" / "server_other"
    # for the server's during that tool's arm. Empty for rows that do not measure CPU.
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def ratio(self) -> float:
        m, p = median(self.mirrord), median(self.other)
        if math.isnan(m) or math.isnan(p) or p == 0:
            return math.nan
        return m / p

    def as_dict(self) -> dict:
        return {"workload": self.workload, "case": self.case, "metric": self.metric,
                "peer": self.peer, "mirrord": self.mirrord, "other": self.other,
                "mirrord_median": _nan_none(median(self.mirrord)),
                "other_median": _nan_none(median(self.other)),
                "ratio": _nan_none(self.ratio()), "lower_is_better": self.lower_is_better,
                "notes": self.notes,
                "cpu_s_per_1k_files": {k: [round(v, 6) for v in vals] for k, vals in self.cpu.items()},
                "cpu_s_per_1k_files_median": {k: _nan_none(median(v)) for k, v in self.cpu.items()}}


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def fmt(x: float) -> str:
    if x is None or math.isnan(x):
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_runs(values: list[float]) -> str:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return fmt(vals[0])
    return f"{fmt(median(vals))} ({fmt(min(vals))}–{fmt(max(vals))})"


# ---------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the bench process goes away."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Proc:
    """A child process in its own process group, stopped group-wide."""

    def __init__(self, ctx: "Context", argv: list[str], *, log: Path, env: dict | None = None,
                 cwd: Path | None = None, stdin=subprocess.DEVNULL):
        self.argv = argv
        self.log = log
        with open(log, "ab") as fh:
            self.popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=stdin,
                                          env=env, cwd=cwd, start_new_session=True,
                                          preexec_fn=_die_with_parent)
        self.pid = self.popen.pid
        self.started = time.monotonic()
        ctx.procs.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Signal the whole group, wait, then SIGKILL the group; safe to call twice."""
        for s, wait in ((sig, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.pid, s)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=wait)
                # the leader is gone; make sure its group (rsync, ssh children) is too
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                break
            except subprocess.TimeoutExpired:
                continue
        return self.popen.returncode

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of a live process (VmHWM), in MiB; NaN when gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def wait_for_text(proc: Proc, needle: str, *, timeout: float, poll: float = 0.01,
                  offset: int = 0) -> float:
    """Wait until `needle` appears in the process log after byte `offset`; returns the
    monotonic time it was seen. Raises if the process dies or the time runs out."""
    deadline = time.monotonic() + timeout
    pos = offset
    tail = b""
    with open(proc.log, "rb") as fh:
        while True:
            fh.seek(pos)
            chunk = fh.read()
            if chunk:
                pos += len(chunk)
                buf = tail + chunk
                if needle.encode() in buf:
                    return time.monotonic()
                tail = buf[-len(needle):]
            if not proc.alive():
                raise RuntimeError(f"{proc.argv[0]} exited {proc.popen.returncode} before "
                                   f"{needle!r}:\n{proc.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.argv[0]}: no {needle!r} after {timeout}s:\n"
                                   f"{proc.log_text()[-2000:]}")
            time.sleep(poll)


# ---------------------------------------------------------------- the run context


class Context:
    """One benchmark run: a scratch directory, lazily started services, every child process."""

    def __init__(self, profile: Profile, *, reps: int | None = None, keep: bool = False,
                 verbose: bool = True, s3_workers: int | None = None, seaweed=None,
                 keep_deleted: str | None = None, targets: Iterable[str] = TARGET_KINDS,
                 keep_paired: str | None = None, watcher: str | None = None,
                 scratch: Path | None = None, warmup: int = 0):
        """seaweed: an already running tests.services.seaweedfs.SeaweedFS to use (a test's
        fixture); the context then neither starts one nor stops it. keep_deleted: a duration
        ("7d") given to mirrord's S3 and rsync targets (`keep_deleted =`); every row of the
        run is then labelled with it, so its figures stand beside those without it. targets:
        which of TARGET_KINDS the burst and initial-sync workloads run arms for. keep_paired:
        a duration: those workloads run mirrord both without and with `keep_deleted =` it,
        back to back in each repetition (bench/pairs.py), one row each. watcher: mirrord's
        `[source] watcher =` in the workloads that start its daemon (None: its default); every
        row of the run is then labelled with it. scratch: the directory the run's own scratch
        directory is made in (None: the system's temporary directory). warmup: unrecorded
        rounds of every arm before a pair's repetitions (bench/pairs.py)."""
        self.profile = profile
        self.watcher = watcher
        self.reps = reps or profile.reps
        self.warmup = warmup
        self.s3_workers = s3_workers   # mirrord's S3 `workers`; None: its default
        self.keep_deleted = keep_deleted
        self.targets = frozenset(targets)
        self.keep_paired = keep_paired
        self.keep = keep
        self.verbose = verbose
        self.base = Path(tempfile.mkdtemp(prefix="mirrord-bench-", dir=scratch))
        self.procs: list[Proc] = []
        self.rows: list[Row] = []
        self._seaweed = seaweed
        self._own_seaweed = seaweed is None
        self._sshd = None
        self._counter = 0
        self.started = time.monotonic()

    # -- bookkeeping
    def log(self, *parts: object) -> None:
        if self.verbose:
            print(f"[{time.monotonic() - self.started:7.1f}s]", *parts, flush=True)

    @staticmethod
    def load() -> float:
        """The 1-minute load average now (the machine is shared: quoted with each figure)."""
        return os.getloadavg()[0]

    def fresh_dir(self, name: str) -> Path:
        self._counter += 1
        path = self.base / f"{self._counter:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def row(self, workload: str, case: str, metric: str, peer: str, **kw) -> Row:
        if self.keep_deleted:   # a workload of its own: --merge keeps the rows without it
            workload = f"{workload}, keep_deleted = {self.keep_deleted}"
        if self.watcher:
            workload = f"{workload}, watcher = {self.watcher}"
        for r in self.rows:
            if (r.workload, r.case, r.metric, r.peer) == (workload, case, metric, peer):
                return r
        return self.add(Row(workload, case, metric, peer, **kw))

    # -- services
    def seaweed(self):
        if self._seaweed is None:
            from tests.services.seaweedfs import start_seaweedfs
            server = start_seaweedfs(self.fresh_dir("seaweedfs"))
            self._seaweed = server
            self.log("SeaweedFS at", server.endpoint_url)
        return self._seaweed

    def sshd(self):
        if self._sshd is None:
            from tests.services.sshd import SshServer
            server = SshServer(self.fresh_dir("sshd"))
            server.start()
            self._sshd = server
            self.log(f"sshd at {server.host}:{server.port}")
        return self._sshd

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop(timeout=10)
        if self._sshd is not None:
            with contextlib.suppress(Exception):
                self._sshd.stop()
        if self._seaweed is not None and self._own_seaweed:
            with contextlib.suppress(Exception):
                self._seaweed.stop()
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------- tools


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def rclone_env(ctx: Context, remote: str = "BENCH") -> dict:
    """rclone configured entirely by environment for the run's SeaweedFS."""
    s3 = ctx.seaweed()
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    p = f"RCLONE_CONFIG_{remote}_"
    env.update({p + "TYPE": "s3", p + "PROVIDER": "SeaweedFS", p + "ENDPOINT": s3.endpoint_url,
                p + "ACCESS_KEY_ID": s3.access_key, p + "SECRET_ACCESS_KEY": s3.secret_key,
                p + "REGION": s3.region, "RCLONE_CONFIG": "/dev/null"})
    return env


def s3_client(ctx: Context):
    return ctx.seaweed().client()


def wait_until(pred: Callable[[], bool], *, timeout: float, interval: float) -> float | None:
    """Poll `pred`; the monotonic time it first held, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def count_files(root: Path) -> int:
    """Regular files below root, skipping mirrord's own area."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and ".mirrord" in dirnames:
            dirnames.remove(".mirrord")
        n += len(filenames)
    return n


# ---------------------------------------------------------------- trees


def make_tree(root: Path, files: int, dirs: int, *, size: Callable[[random.Random], int],
              seed: int = 1, depth2: bool = True) -> int:
    """`files` files spread over `dirs` directories (two levels, like MediaWiki's x/xy);
    returns total bytes. Content is random (incompressible), sizes from `size(rng)`.
    Ends with os.sync(): the tree's writeback (693 MiB for the initial sync) otherwise
    runs under whichever arm comes first and slows it alone."""
    rng = random.Random(seed)
    blob = os.urandom(1 << 20)
    paths = []
    fan = max(1, int(math.sqrt(dirs))) if depth2 else dirs
    for d in range(dirs):
        rel = f"{d % fan:02x}/{d:04x}" if depth2 and dirs > 1 else f"d{d:04x}"
        (root / rel).mkdir(parents=True, exist_ok=True)
        paths.append(root / rel)
    total = 0
    for i in range(files):
        n = size(rng)
        off = rng.randrange(0, len(blob) - min(n, len(blob)) + 1)
        data = blob[off:off + n] if n <= len(blob) else (blob * (n // len(blob) + 1))[:n]
        with open(paths[i % dirs] / f"f{i:07d}.bin", "wb") as fh:
            fh.write(data)
        total += n
    os.sync()
    return total


def log_uniform(lo: int, hi: int) -> Callable[[random.Random], int]:
    """Sizes spread evenly on a log scale between lo and hi (many small, some large)."""
    a, b = math.log(lo), math.log(hi)
    return lambda rng: int(math.exp(rng.uniform(a, b)))


def fixed(n: int) -> Callable[[random.Random], int]:
    return lambda _rng: n


# ---------------------------------------------------------------- mirrord


def mirrord_config(path: Path, *, state: Path, source: Path, target_ini: str,
                   workers: int | None = None, extra_mirrord: str = "",
                   watcher: str | None = None) -> Path:
    """A config with one source `b` mirrored to one target `t` (target_ini: its body);
    watcher: the source's `watcher =` (None: mirrord's default)."""
    lines = ["[mirrord]", f"state_dir = {state}", "heartbeat_interval = 5s", "log_level = info"]
    if workers:
        lines.append(f"workers = {workers}")
    if extra_mirrord:
        lines.append(extra_mirrord)
    lines += ["", "[source:b]", f"path = {source}", "targets = t"]
    if watcher:
        lines.append(f"watcher = {watcher}")
    lines += ["", "[target:t]", target_ini.strip(), ""]
    path.write_text("\n".join(lines))
    return path


def local_target_ini(dest: Path, *, fsync: bool = True, ctx: Context | None = None) -> str:
    """A local target's body; with `ctx`, its `keep_deleted` line when the run asks for it."""
    body = f"type = local\npath = {dest}\nfsync = {'yes' if fsync else 'no'}"
    return body + (keep_deleted_ini(ctx) if ctx is not None else "")


# S3 concurrency for both sides of every S3 comparison: rclone --transfers, mirrord workers.
S3_TRANSFERS = 16


def s3_target_ini(ctx: Context, bucket: str, prefix: str, *, workers: int | None = None) -> str:
    s3 = ctx.seaweed()
    body = (f"type = s3\nbucket = {bucket}\nprefix = {prefix}\nendpoint_url = {s3.endpoint_url}\n"
            f"region = {s3.region}\naccess_key_id = {s3.access_key}\n"
            f"secret_access_key = {s3.secret_key}\naddressing_style = path")
    if workers:
        body += f"\nworkers = {workers}"
    return body + keep_deleted_ini(ctx)


def rsync_target_ini(ctx: Context, root: Path) -> str:
    ssh = ctx.sshd()
    return (f"type = rsync\nhost = {ssh.host}\nport = {ssh.port}\nuser = {ssh.user}\n"
            f"path = {root}\nssh_key = {ssh.key_path}\nknown_hosts = {ssh.known_hosts}\n"
            f"strict_host_key_checking = yes") + keep_deleted_ini(ctx)


def rsync_rsh(ctx: Context) -> str:
    """rsync's `-e` for the loopback sshd: its port, key and pinned host key, no prompts."""
    ssh = ctx.sshd()
    return " ".join(shlex.quote(a) for a in [
        "ssh", "-p", str(ssh.port), "-i", str(ssh.key_path), "-o",
        f"UserKnownHostsFile={ssh.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes"])


def sshd_pid(ctx: Context) -> int:
    """The loopback sshd's pid: its process tree runs every remote command and rsync
    server, so its CPU is the mirror host's side of an ssh arm (bench/cpu.py tree_cpu)."""
    return ctx.sshd()._proc.pid


def keep_deleted_ini(ctx: Context) -> str:
    """The target's `keep_deleted` line when the run asks for it (--keep-deleted), else ''."""
    return f"\nkeep_deleted = {ctx.keep_deleted}" if ctx.keep_deleted else ""


class Mirrord:
    """`mirrord -c CONFIG run` as a child process (its own process group)."""

    def __init__(self, ctx: Context, config: Path, *, env: dict | None = None,
                 argv_prefix: list[str] | None = None):
        self.ctx = ctx
        self.config = config
        self.log = config.with_suffix(".log")
        self.env = {**os.environ, **(env or {})}
        self.argv = (argv_prefix or []) + [MIRRORD, "-c", str(config), "run"]
        self.proc: Proc | None = None
        self.t_start = 0.0
        self.offset = 0          # where this run's lines begin in a log shared by restarts

    def start(self, *, wait: bool = True, timeout: float = 600.0) -> float:
        """Start; with wait, block until `msg=running`. Returns seconds from exec to running."""
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self.t_start = time.monotonic()
        self.proc = Proc(self.ctx, self.argv, log=self.log, env=self.env)
        if not wait:
            return math.nan
        return self.wait_running(timeout) - self.t_start

    def wait_running(self, timeout: float = 600.0) -> float:
        assert self.proc is not None
        return wait_for_text(self.proc, "msg=running", timeout=timeout, offset=self.offset)

    def wait_watching(self, timeout: float = 600.0) -> float:
        """When the last source's watches were all in place (`msg=watching`); polled every
        2 ms: the figure is tens of milliseconds, a 10 ms poll would add 5 on average."""
        assert self.proc is not None
        return wait_for_text(self.proc, "msg=watching", timeout=timeout, offset=self.offset,
                             poll=0.002)

    def journal_path(self) -> Path:
        """Its state database, where the daemon's own config puts it."""
        from mirrord.config import load
        return load(self.config).mirrord.journal_path

    def wait_catchup(self, timeout: float = 600.0) -> float:
        assert self.proc is not None
        return wait_for_text(self.proc, "catch-up done", timeout=timeout, offset=self.offset)

    def run_log(self) -> str:
        """This run's part of the log."""
        with open(self.log, "rb") as fh:
            fh.seek(self.offset)
            return fh.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM, timeout=40)


# ---------------------------------------------------------------- lsyncd


class Lsyncd:
    """lsyncd 2.2 in the foreground (-nodaemon) on a generated config file."""

    def __init__(self, ctx: Context, workdir: Path, source: Path, *, target: Path | None = None,
                 ssh_root: Path | None = None, delay: float = 0):
        self.ctx = ctx
        self.conf = workdir / "lsyncd.lua"
        self.log = workdir / "lsyncd.out"
        src = str(source).rstrip("/") + "/"
        if ssh_root is None:
            assert target is not None
            body = (f'sync {{ default.rsync, source = "{src}", target = "{target}/", '
                    f"delay = {delay} }}")
        else:
            ssh = ctx.sshd()
            body = (f'sync {{ default.rsyncssh, source = "{src}", host = "{ssh.user}@{ssh.host}", '
                    f'targetdir = "{ssh_root}/", delay = {delay}, '
                    f'ssh = {{ port = {ssh.port}, identityFile = "{ssh.key_path}", '
                    f'options = {{ UserKnownHostsFile = "{ssh.known_hosts}", '
                    f'StrictHostKeyChecking = "yes", BatchMode = "yes" }} }} }}')
        self.conf.write_text(
            f'settings {{ nodaemon = true, statusFile = "{workdir / "lsyncd.status"}", '
            f'statusInterval = 3600, insist = false }}\n{body}\n')
        self.proc: Proc | None = None
        self.t_start = 0.0

    def start(self) -> None:
        self.t_start = time.monotonic()
        self.proc = Proc(self.ctx, ["lsyncd", "-nodaemon", str(self.conf)], log=self.log)

    def wait_watching(self, timeout: float = 3600.0) -> float:
        """Watches are added before lsyncd starts its initial rsync (it logs that line);
        polled every 2 ms, like mirrord's."""
        assert self.proc is not None
        return wait_for_text(self.proc, "startup rsync", timeout=timeout, poll=0.002)

    def wait_started(self, timeout: float = 3600.0) -> float:
        """Its initial full rsync has finished."""
        assert self.proc is not None
        return wait_for_text(self.proc, "Startup of", timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM, timeout=10)
