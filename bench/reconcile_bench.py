#!/usr/bin/env python3
"""Benchmark: `mirrord reconcile --dry-run` against `rclone sync --dry-run` on an S3 target.

Method (issue 3): a tree of FILES files of 1 KiB in FILES/100 directories is
mirrored to a real SeaweedFS (started here, on free loopback ports, with the
test suite's own fixture code) by mirrord itself, so the state database holds
what was shipped, as it would in production. Then, alternating the two tools
RUNS times on the same in-sync tree:

  mirrord -c bench.ini reconcile --dry-run --json
  rclone sync --dry-run SRC bench:BUCKET/data --checkers 16      (Debian's rclone)

and the medians, their ratio, and mirrord's peak RSS (ru_maxrss of the child,
from wait4) are reported. Then 1% drift: 1% of the files are rewritten at the
source and each tool repairs its own fresh 1% for real (`mirrord reconcile`,
`rclone sync`), alternating, median of RUNS. rclone is configured entirely by
environment (RCLONE_CONFIG_BENCH_*), with AWS_CA_BUNDLE unset (Debian's rclone
refuses to start with it).

  .venv/bin/python bench/reconcile_bench.py                # 100,000 files (the figure)
  .venv/bin/python bench/reconcile_bench.py --files 2000   # quick, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services.seaweedfs import SeaweedFS  # noqa: E402  (the fixture's server code)

MIRRORD = str(Path(sys.executable).with_name("mirrord"))
PREFIX = "data"


def make_tree(src: Path, files: int, size: int) -> list[Path]:
    dirs = max(1, files // 100)
    paths = []
    for d in range(dirs):
        (src / f"dir{d:04d}").mkdir(parents=True, exist_ok=True)
    block = os.urandom(size)
    for i in range(files):
        p = src / f"dir{i % dirs:04d}" / f"file{i:06d}.bin"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, block[:size - 8] + i.to_bytes(8, "big"))
        os.close(fd)
        paths.append(p)
    return paths


def write_config(base: Path, weed: SeaweedFS, bucket: str) -> Path:
    ini = base / "bench.ini"
    ini.write_text(
        f"[mirrord]\nstate_dir = {base / 'state'}\nlog_level = warning\n\n"
        f"[source:bench]\npath = {base / 'src'}\ntargets = s3\n\n"
        f"[target:s3]\ntype = s3\nworkers = 16\nbucket = {bucket}\nprefix = {PREFIX}/\n"
        f"endpoint_url = {weed.endpoint_url}\nregion = {weed.region}\n"
        f"access_key_id = {weed.access_key}\nsecret_access_key = {weed.secret_key}\n"
        f"addressing_style = path\n\n[reconcile]\nmax_delete = 5%\n")
    return ini


def rclone_env(weed: SeaweedFS) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    env.update(RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="SeaweedFS",
               RCLONE_CONFIG_BENCH_ENDPOINT=weed.endpoint_url,
               RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=weed.access_key,
               RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=weed.secret_key,
               RCLONE_CONFIG_BENCH_REGION=weed.region)
    return env


def timed(argv: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MiB and stdout of one child process."""
    out = tempfile.TemporaryFile()
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode(errors="replace")
    if proc.returncode not in (0,):
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {text[-2000:]}")
    return seconds, usage.ru_maxrss // 1024, text


def drift(paths: list[Path], start: int, count: int) -> None:
    step = max(1, len(paths) // count)
    for p in paths[start::step][:count]:
        data = bytearray(p.read_bytes())
        data[0] ^= 0xFF
        p.write_bytes(bytes(data))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not shutil.which("rclone"):
        print("rclone not found (apt-get install rclone)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="mirrord-reconcile-bench-"))
    weed = SeaweedFS(base / "weed")
    weed.start()
    try:
        return run(args, base, weed)
    finally:
        weed.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def run(args, base: Path, weed: SeaweedFS) -> int:
    bucket = weed.new_bucket()
    ini = write_config(base, weed, bucket)
    env = rclone_env(weed)
    src = base / "src"
    print(f"tree: {args.files:,} files of {args.size} B in {max(1, args.files // 100):,} "
          f"directories; SeaweedFS {weed.endpoint_url}", flush=True)
    paths = make_tree(src, args.files, args.size)
    seconds, _rss, _ = timed([MIRRORD, "-c", str(ini), "reconcile", "--json"])
    print(f"initial upload by mirrord reconcile: {seconds:.1f}s", flush=True)

    mirrord_dry = [MIRRORD, "-c", str(ini), "reconcile", "--dry-run", "--json"]
    rclone_dry = ["rclone", "sync", "--dry-run", str(src), f"bench:{bucket}/{PREFIX}",
                  "--checkers", "16"]
    m_times, r_times, rss = [], [], []
    for i in range(args.runs):
        s, peak, out = timed(mirrord_dry)
        doc = json.loads(out)["targets"]["s3"]
        assert doc["missing"] == doc["changed"] == doc["extra"] == 0, doc
        m_times.append(s)
        rss.append(peak)
        s, _peak, _ = timed(rclone_dry, env)
        r_times.append(s)
        print(f"  run {i + 1}: mirrord {m_times[-1]:.2f}s ({peak} MiB)  rclone {s:.2f}s", flush=True)

    count = max(1, args.files // 100)
    md, rd = [], []
    for i in range(args.runs):
        drift(paths, 2 * i, count)
        s, _peak, out = timed([MIRRORD, "-c", str(ini), "reconcile", "--json"])
        assert json.loads(out)["targets"]["s3"]["changed"] == count, out
        md.append(s)
        drift(paths, 2 * i + 1, count)
        s, _peak, _ = timed(["rclone", "sync", str(src), f"bench:{bucket}/{PREFIX}",
                             "--checkers", "16", "--transfers", "16"], env)
        rd.append(s)
        timed([MIRRORD, "-c", str(ini), "reconcile", "--json"])   # mirrord learns rclone's uploads
        print(f"  drift {i + 1}: mirrord {md[-1]:.2f}s  rclone {s:.2f}s", flush=True)

    result = {
        "files": args.files, "runs": args.runs,
        "in_sync_dry_run": {"mirrord_median_s": round(statistics.median(m_times), 3),
                            "rclone_median_s": round(statistics.median(r_times), 3),
                            "ratio_mirrord_over_rclone": round(statistics.median(m_times)
                                                               / statistics.median(r_times), 3),
                            "mirrord_peak_rss_mib": max(rss)},
        "one_percent_drift": {"changed": count,
                              "mirrord_median_s": round(statistics.median(md), 3),
                              "rclone_median_s": round(statistics.median(rd), 3)},
    }
    print(json.dumps(result, indent=2))
    ok = result["in_sync_dry_run"]["ratio_mirrord_over_rclone"] <= 1.0 and max(rss) < 200
    print("PASS" if ok else "FAIL: slower than rclone or over 200 MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
