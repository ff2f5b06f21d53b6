"""7. The two watcher backends side by side (issue 18): fanotify (one mark for the whole
file system) against inotify (one watch per directory), and lsyncd (inotify) at start-up.

- start-up on a big, already mirrored tree (`--watch-tree FILES:DIRS`; the issue's size
  is 1000000:200000, most directories leaves): seconds from exec to `msg=watching` and
  to `catch-up done`, peak RSS (VmHWM), and kernel memory held by watches, read from
  /proc/PID/fdinfo of the live process: inotify, the `inotify wd:` lines times
  INOTIFY_WATCH_COST (a mark plus two inodes a watch may pin, the figure
  fs/notify/inotify/inotify_user.c sizes max_user_watches by; object sizes from
  /proc/slabinfo where the caches are not merged, else 80-byte marks and 1,100-byte
  inodes); fanotify, its `fanotify sdev:`/`ino:`/`mnt_id:` mark lines times one mark.
- sustained event rate: the running daemon (local target, fsync off) while a writer
  creates 1 KiB files round-robin in new directories at a set rate; per rate, p99 of
  close (writer's wall clock) -> the target file's ctime (the local target's rename
  into place: same clock, no observer process), and the overflows the daemon logged.
- CPU microseconds per create spent in the watcher's read() (in this process: each
  backend's watcher on its own directory, the same files; fanotify's figure includes
  the events from elsewhere on the file system it read and dropped meanwhile).
The daemon has to use `[source:b] watcher = ...`: a run whose log does not name the
backend asked for is recorded as failed, never counted.
"""

from __future__ import annotations

import glob
import math
import os
import time
from pathlib import Path

from bench.common import (Context, Mirrord, count_files, fixed, have, local_target_ini,
                          make_tree, mirrord_config, percentile, vm_hwm_mib, wait_until)
from bench.startup import run_lsyncd, seed

BACKENDS = ("fanotify", "inotify")
TIMEOUT = 3600.0
SIZES = {"quick": (20_000, 4_000), "default": (100_000, 20_000), "full": (1_000_000, 200_000)}
RATES = {"quick": ((500, 2.0), (2000, 2.0)), "default": ((1000, 5.0), (4000, 5.0)),
         "full": ((1000, 10.0), (4000, 10.0), (10_000, 10.0), (20_000, 10.0))}


def _slab_size(name: str, fallback: int) -> int:
    try:
        with open("/proc/slabinfo") as fh:
            for line in fh:
                if line.startswith(name + " "):
                    return int(line.split()[3])
    except OSError:
        pass
    return fallback


def watch_kib(pid: int) -> tuple[int, float]:
    """(marks, KiB of kernel memory they hold) for the live process `pid`."""
    inotify = fanotify = 0
    for info in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            with open(info) as fh:
                for line in fh:
                    inotify += line.startswith("inotify wd:")
                    fanotify += line.startswith(("fanotify sdev:", "fanotify ino:",
                                                 "fanotify mnt_id:"))
        except OSError:
            continue
    mark = _slab_size("inotify_inode_mark", 80)
    inode = _slab_size("ext4_inode_cache", 1100)
    cost = inotify * (mark + 2 * inode) + fanotify * _slab_size("fanotify_mark", 80)
    return inotify + fanotify, cost / 1024


def backend_config(cfg: Path, backend: str) -> Path:
    """The seeded config (same state database, same target) with `watcher = backend`."""
    out = cfg.with_name(f"mirrord-{backend}.ini")
    out.write_text(cfg.read_text().replace("[source:b]\n", f"[source:b]\nwatcher = {backend}\n"))
    return out


def _check_backend(m: Mirrord, backend: str) -> None:
    if f"backend={backend}" not in m.run_log():
        raise RuntimeError(f"the daemon did not log backend={backend} (is the daemon wired to "
                           f"mirrord.watch.select.open_watcher?)")


def start_once(ctx: Context, cfg: Path, backend: str) -> dict:
    m = Mirrord(ctx, backend_config(cfg, backend))
    try:
        m.start(wait=False)
        watching = m.wait_watching(TIMEOUT) - m.t_start
        marks, kib = watch_kib(m.proc.pid)
        done = m.wait_catchup(TIMEOUT) - m.t_start
        _check_backend(m, backend)
        return {"watching": watching, "checked": done, "rss": vm_hwm_mib(m.proc.pid),
                "kib": kib, "marks": marks}
    finally:
        m.stop()


def lsyncd_once(ctx: Context, tree: Path, mirror: Path) -> dict:
    res = run_lsyncd(ctx, tree, mirror)
    res["kib"] = math.nan        # lsyncd has stopped by now: see the note on the row
    return res


def startup(ctx: Context, files: int, dirs: int) -> None:
    tree = ctx.fresh_dir("watch-tree") / "tree"
    tree.mkdir()
    ctx.log(f"watchers: making {files:,} empty files in {dirs:,} dirs")
    make_tree(tree, files, dirs, size=fixed(0), seed=7)
    case = f"{files:,} files in {dirs:,} dirs, already mirrored"
    rows = {key: {peer: ctx.row("7 watchers start-up", case, metric, peer)
                  for peer in ("mirrord inotify", "lsyncd")}
            for key, metric in (("watching", "seconds until watching"),
                                ("checked", "seconds until in-sync check done"),
                                ("rss", "peak RSS MiB"), ("kib", "kernel KiB held by watches"))}
    cfg, mirror = seed(ctx, tree, files)
    tools = list(BACKENDS) + (["lsyncd"] if have("lsyncd") else [])
    for rep in range(ctx.reps):
        for tool in tools if rep % 2 == 0 else tools[::-1]:
            try:
                res = (lsyncd_once(ctx, tree, mirror) if tool == "lsyncd"
                       else start_once(ctx, cfg, tool))
            except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                ctx.log(f"watchers start-up {tool}: FAILED {exc}")
                rows["watching"]["lsyncd"].notes.append(f"{tool} rep {rep + 1}: {str(exc)[:200]}")
                continue
            ctx.log(f"watchers start-up {tool} rep {rep + 1}: watching {res['watching']:.2f} s, "
                    f"checked {res['checked']:.2f} s, RSS {res['rss']:.0f} MiB, watches "
                    f"{res.get('marks', '?')} holding {res['kib']:.1f} KiB")
            for key, by_peer in rows.items():
                if tool == "fanotify":
                    for row in by_peer.values():
                        row.mirrord.append(res[key])
                else:
                    by_peer["mirrord inotify" if tool == "inotify" else "lsyncd"].other.append(
                        res[key])
    rows["kib"]["lsyncd"].notes.append("lsyncd's watches are the same inotify watches as "
                                       "mirrord inotify's, one per directory")


def rates(ctx: Context) -> list[tuple[int, float]]:
    """(creates per second, seconds) for each sustained run: `--watch-rates` (each for the
    mode's first duration) to bracket the backends' ceilings, else the mode's own."""
    chosen = getattr(ctx, "watch_rates", None)
    if not chosen:
        return list(RATES[ctx.profile.name])
    return [(rate, RATES[ctx.profile.name][0][1]) for rate in chosen]


def sustained(ctx: Context) -> None:
    for rate, seconds in rates(ctx):
        case = f"{rate}/s for {seconds:g} s, 1 KiB files, {rate // 10} new dirs/s, local target"
        p99 = ctx.row("7 watchers sustained", case, "p99 close-to-target ms", "mirrord inotify")
        for rep in range(ctx.reps):
            for backend in BACKENDS if rep % 2 == 0 else BACKENDS[::-1]:
                try:
                    ms, overflows = rate_once(ctx, backend, rate, seconds)
                except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                    ctx.log(f"watchers sustained {backend} {rate}/s: FAILED {exc}")
                    p99.notes.append(f"{backend} {rate}/s rep {rep + 1}: {str(exc)[:200]}")
                    continue
                ctx.log(f"watchers sustained {backend} {rate}/s: p99 {ms:.1f} ms, "
                        f"overflows {overflows}")
                (p99.mirrord if backend == "fanotify" else p99.other).append(ms)
                if overflows:
                    p99.notes.append(f"{backend} rep {rep + 1}: {overflows} queue overflow(s)")


def rate_once(ctx: Context, backend: str, rate: int, seconds: float) -> tuple[float, int]:
    work = ctx.fresh_dir(f"rate-{backend}")
    src, dest = work / "src", work / "mirror"
    src.mkdir()
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=src,
                         target_ini=local_target_ini(dest, fsync=False))
    m = Mirrord(ctx, backend_config(cfg, backend))
    try:
        m.start(wait=False)
        m.wait_catchup(600)
        _check_backend(m, backend)
        closed = write_at(src, rate, seconds)
        if wait_until(lambda: count_files(dest) >= len(closed), timeout=300,
                      interval=0.2) is None:
            raise RuntimeError(f"{count_files(dest)} of {len(closed)} files arrived")
        lat = [(os.stat(dest / rel).st_ctime - t) * 1000 for rel, t in closed.items()]
        return percentile(lat, 99), m.run_log().count("overflow")
    finally:
        m.stop()


def write_at(src: Path, rate: int, seconds: float) -> dict[str, float]:
    """Create rate*seconds 1 KiB files at `rate` per second, ten per new directory;
    returns {relative path: wall-clock time after close}."""
    closed: dict[str, float] = {}
    data = os.urandom(1024)
    t0, n = time.monotonic(), int(rate * seconds)
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        rel = f"d{i // 10:06d}/f{i}.bin"
        if i % 10 == 0:
            (src / rel).parent.mkdir()
        with open(src / rel, "wb") as fh:
            fh.write(data)
        closed[rel] = time.time()
    return closed


def cpu_per_create(ctx: Context, n: int = 5000) -> None:
    from mirrord.watch.fanotify import FanotifyWatcher
    from mirrord.watch.inotify import TreeWatcher
    row = ctx.row("7 watchers cost", f"{n:,} creates in 10 dirs, read() in process",
                  "CPU us per create", "mirrord inotify")
    for rep in range(ctx.reps):
        for name in BACKENDS if rep % 2 == 0 else BACKENDS[::-1]:
            root = ctx.fresh_dir(f"cpu-{name}")
            w = (FanotifyWatcher if name == "fanotify" else TreeWatcher)(str(root))
            try:
                w.start()
                us = _cpu_us(w, root, n)
            finally:
                w.close()
            ctx.log(f"watchers cost {name}: {us:.1f} CPU us per create")
            (row.mirrord if name == "fanotify" else row.other).append(us)


def _cpu_us(w, root: Path, n: int) -> float:
    for d in range(10):
        (root / f"d{d}").mkdir()
    w.read(200)
    for i in range(n):
        (root / f"d{i % 10}" / f"{i}.jpg").write_bytes(b"x")
    seen: set[str] = set()
    start, deadline = time.process_time(), time.monotonic() + 120
    while len(seen) < n and time.monotonic() < deadline:
        seen.update(e.path for e in w.read(100) if e.kind == "write")
    if len(seen) < n:
        raise RuntimeError(f"only {len(seen)} of {n} creates reported")
    return (time.process_time() - start) / n * 1e6


def run(ctx: Context) -> None:
    files, dirs = getattr(ctx, "watch_tree", None) or SIZES[ctx.profile.name]
    parts = getattr(ctx, "watch_parts", None) or {"cost", "sustained", "startup"}
    if "cost" in parts:
        cpu_per_create(ctx)
    if "sustained" in parts:
        sustained(ctx)
    if "startup" in parts:   # last: the big tree's removal at the end takes minutes
        startup(ctx, files, dirs)
