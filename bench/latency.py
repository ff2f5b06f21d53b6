"""1. Live latency: close of a file on the source -> its full-size arrival at the destination.

Files of 4 KiB are written at a fixed rate (200/s for 10 s, 1,000/s for 5 s)
into `live/` of a watched tree; the close time of each is taken right after
close() returns. The destination directory is on this machine in every case
(the rsync host is a loopback sshd), so arrival is observed with inotify on
the destination directory (IN_MOVED_TO / IN_CLOSE_WRITE, then an lstat to
check the full size): the same observer for mirrord and lsyncd, no polling
delay, and no scan cost stealing CPU from the tools under test. A final scan
counts any file the observer did not see as missing (reported, never hidden).

Pairs, alternated A/B then B/A across repetitions, each run on fresh dirs:
- local:  mirrord (local target, default fsync = yes) vs lsyncd default.rsync, delay = 0
- ssh:    mirrord (rsync target)                      vs lsyncd default.rsyncssh, delay = 0
Both tools are fully started (mirrord: running and catch-up done; lsyncd: its
initial rsync finished) before the first file is written.

To S3 (issue 15's new row, first rate only), mirrord alone: `rclone copy` run
per change is not a fair peer, so the row is read against the goal p99 < 100 ms.
Arrival is the SeaweedFS filer's own commit time of each object, read from its
metadata log after the run (bench/filer_events.py): no observer, no poller, no
load on the server while mirrord works; close times are wall-clock (time.time)
on the same host, the clock the filer stamps with.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

from inotify_simple import INotify
from inotify_simple import flags as F

from bench.ack import acked_now, wait_mirrord
from bench.common import (Context, Lsyncd, Mirrord, have, local_target_ini, mirrord_config,
                          percentile, rsync_target_ini, s3_target_ini, wait_until)
from bench.filer_events import appeared

NAME = "latency"
SIZE = 4096
SETTLE = 30.0   # seconds to wait after the last write for stragglers


class Arrivals(threading.Thread):
    """Records the monotonic time each `fNNNNNN.bin` appears full-size in `directory`."""

    def __init__(self, directory: Path):
        super().__init__(name="arrivals", daemon=True)
        self.dir = directory
        self.seen: dict[str, float] = {}
        self.stop_flag = threading.Event()
        self.inotify = INotify()
        self.inotify.add_watch(str(directory), F.MOVED_TO | F.CLOSE_WRITE)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            for ev in self.inotify.read(timeout=100):
                now = time.monotonic()
                name = ev.name
                if not name or name.startswith(".") or name in self.seen:
                    continue
                try:
                    if os.lstat(self.dir / name).st_size == SIZE:
                        self.seen[name] = now
                except OSError:
                    pass

    def close(self) -> None:
        self.stop_flag.set()
        self.join(5)
        self.inotify.close()


def write_files(directory: Path, rate: int, seconds: float,
                clock=time.monotonic) -> dict[str, float]:
    """Write rate*seconds files of 4 KiB on schedule; returns name -> close time (`clock()`,
    seconds)."""
    payload = os.urandom(SIZE)
    closed: dict[str, float] = {}
    n = int(rate * seconds)
    t0 = time.monotonic() + 0.05
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        name = f"f{i:06d}.bin"
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, payload[:8] + i.to_bytes(8, "big") + payload[16:])
        finally:
            os.close(fd)
        closed[name] = clock()
    return closed


def measure(dest_live: Path, src_live: Path, rate: int, seconds: float) -> dict:
    if wait_until(dest_live.is_dir, timeout=30, interval=0.01) is None:
        raise RuntimeError(f"{dest_live} never appeared at the destination")
    watcher = Arrivals(dest_live)
    watcher.start()
    try:
        closed = write_files(src_live, rate, seconds)
        wait_until(lambda: len(watcher.seen) >= len(closed), timeout=SETTLE, interval=0.05)
    finally:
        watcher.close()
    lat = [(watcher.seen[n] - t) * 1000 for n, t in closed.items() if n in watcher.seen]
    present = {e.name for e in os.scandir(dest_live) if not e.name.startswith(".")}
    missing = len(closed) - len(lat)
    return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat, default=math.nan),
            "missing": missing, "unobserved_but_present": len(present - set(watcher.seen)),
            "files": len(closed)}


def run_mirrord(ctx: Context, transport: str, rate: int, seconds: float) -> dict:
    work = ctx.fresh_dir(f"lat-m-{transport}-{rate}")
    src = work / "src"
    (src / "live").mkdir(parents=True)
    if transport == "local":
        dest = work / "dst"
        target = local_target_ini(dest)
    else:
        dest = ctx.sshd().new_root()
        target = rsync_target_ini(ctx, dest)
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=src, target_ini=target,
                         watcher=ctx.watcher)
    m = Mirrord(ctx, cfg)
    try:
        m.start()
        m.wait_catchup(60)
        return measure(dest / "live", src / "live", rate, seconds)
    finally:
        m.stop()


def run_mirrord_s3(ctx: Context, rate: int, seconds: float) -> dict:
    """mirrord (S3 target, default config) on a live stream; latencies from the filer's log."""
    work = ctx.fresh_dir(f"lat-m-s3-{rate}")
    src = work / "src"
    (src / "live").mkdir(parents=True)
    bucket = ctx.seaweed().new_bucket()
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=src,
                         target_ini=s3_target_ini(ctx, bucket, "lat/"), watcher=ctx.watcher)
    m = Mirrord(ctx, cfg)
    try:
        m.start()
        m.wait_catchup(60)
        acked = acked_now(m)
        started = time.time()
        closed = write_files(src / "live", rate, seconds, clock=time.time)
        try:   # its own acknowledgement says when to look; stragglers show as missing
            wait_mirrord(m, len(closed), acked_before=acked, timeout=SETTLE)
        except RuntimeError as exc:
            ctx.log(f"latency s3: {exc}")
    finally:
        m.stop()
    seen = appeared(ctx.seaweed(), bucket, "lat/live/", SIZE, since_s=time.time() - started,
                    log=work / "filer-events.json")
    lat = [(seen[n] - t) * 1000 for n, t in closed.items() if n in seen]
    return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat, default=math.nan),
            "missing": len(closed) - len(lat), "unobserved_but_present": 0, "files": len(closed)}


def run_lsyncd(ctx: Context, transport: str, rate: int, seconds: float) -> dict:
    work = ctx.fresh_dir(f"lat-l-{transport}-{rate}")
    src = work / "src"
    (src / "live").mkdir(parents=True)
    if transport == "local":
        dest = work / "dst"
        dest.mkdir()
        lsy = Lsyncd(ctx, work, src, target=dest, delay=0)
    else:
        dest = ctx.sshd().new_root()
        lsy = Lsyncd(ctx, work, src, ssh_root=dest, delay=0)
    try:
        lsy.start()
        lsy.wait_started(60)
        return measure(dest / "live", src / "live", rate, seconds)
    finally:
        lsy.stop()


def run(ctx: Context) -> None:
    peers = {"local": "lsyncd default.rsync delay=0", "ssh": "lsyncd default.rsyncssh delay=0"}
    lsyncd_ok = have("lsyncd")
    for rate, seconds in ctx.profile.latency_rates:
        for transport in ("local", "ssh"):
            case = f"{transport}: {rate} files/s × {seconds:g} s, 4 KiB"
            rows = {k: ctx.row("1 live latency", case, f"{k} ms", peers[transport])
                    for k in ("p50", "p99")}
            if not lsyncd_ok:
                rows["p99"].notes.append("lsyncd not installed: peer skipped")
            for rep in range(ctx.reps):
                order = ["mirrord", "lsyncd"] if rep % 2 == 0 else ["lsyncd", "mirrord"]
                for tool in order:
                    if tool == "lsyncd" and not lsyncd_ok:
                        continue
                    fn = run_mirrord if tool == "mirrord" else run_lsyncd
                    try:
                        res = fn(ctx, transport, rate, seconds)
                    except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                        ctx.log(f"latency {case} {tool}: FAILED {exc}")
                        rows["p99"].notes.append(f"{tool} rep {rep + 1} failed: {str(exc)[:200]}")
                        continue
                    ctx.log(f"latency {case} {tool} rep {rep + 1}: p50 {res['p50']:.1f} ms, "
                            f"p99 {res['p99']:.1f} ms, max {res['max']:.1f} ms, "
                            f"missing {res['missing']}/{res['files']}")
                    for k in ("p50", "p99"):
                        (rows[k].mirrord if tool == "mirrord" else rows[k].other).append(res[k])
                    if res["missing"]:
                        rows["p99"].notes.append(f"{tool} rep {rep + 1}: {res['missing']} of "
                                                 f"{res['files']} files not seen within {SETTLE:g} s")
    run_s3(ctx, *ctx.profile.latency_rates[0])


def run_s3(ctx: Context, rate: int, seconds: float) -> None:
    """The S3 case: mirrord only, at the first (lower) rate."""
    case = f"s3: {rate} files/s × {seconds:g} s, 4 KiB"
    rows = {k: ctx.row("1 live latency", case, f"{k} ms", "") for k in ("p50", "p99")}
    rows["p99"].notes.append("no peer (rclone copy per change is not a fair one); goal p99 < 100 ms; "
                             "arrival = the SeaweedFS filer's commit time, read after the run")
    for rep in range(ctx.reps):
        try:
            res = run_mirrord_s3(ctx, rate, seconds)
        except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
            ctx.log(f"latency {case} mirrord: FAILED {exc}")
            rows["p99"].notes.append(f"mirrord rep {rep + 1} failed: {str(exc)[:200]}")
            continue
        ctx.log(f"latency {case} mirrord rep {rep + 1}: p50 {res['p50']:.1f} ms, "
                f"p99 {res['p99']:.1f} ms, max {res['max']:.1f} ms, "
                f"missing {res['missing']}/{res['files']}")
        for k in ("p50", "p99"):
            rows[k].mirrord.append(res[k])
        if res["missing"]:
            rows["p99"].notes.append(f"mirrord rep {rep + 1}: {res['missing']} of {res['files']} "
                                     f"files not on the target within {SETTLE:g} s")
