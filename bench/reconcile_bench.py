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
`rclone sync`), alternating which goes first, median of RUNS. rclone is
configured entirely by environment (RCLONE_CONFIG_BENCH_*), with AWS_CA_BUNDLE
unset (Debian's rclone refuses to start with it).

Both tools are one-shot: each is timed to its own exit (its acknowledgement)
and nothing else talks to SeaweedFS meanwhile (issue 15). Each run also reports
CPU seconds, per 1,000 files of the tree, of the tool (wait4's rusage: the
process and its reaped children) and of SeaweedFS (its process tree in /proc,
before and after; bench/cpu.py). After each repair, ONE listing must show every
key at its size, and the drifted keys with the ETag (MD5) of their new content.

  .venv/bin/python bench/reconcile_bench.py                # 100,000 files (the figure)
  .venv/bin/python bench/reconcile_bench.py --files 2000   # quick, for CI
"""

from __future__ import annotations

import argparse
import hashlib
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

from bench import common  # noqa: E402
from bench.cpu import tree_cpu  # noqa: E402
from tests.services.seaweedfs import SeaweedFS  # noqa: E402  (the fixture's server code)

MIRRORD = str(Path(sys.executable).with_name("mirrord"))
PREFIX = "data"


def make_tree(src: Path, files: int, size: int) -> list[Path]:
    """`files` files of `size` bytes in files/100 flat directories (bench.common's
    make_tree, which also syncs the tree to disk); returns their paths, sorted."""
    common.make_tree(src, files, max(1, files // 100), size=lambda _rng: size, depth2=False)
    return sorted(src.glob("*/*.bin"))


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
    seconds, rss, text, _cpu = measured(argv, env)
    return seconds, rss, text


def measured(argv: list[str], env: dict | None = None,
             server_pid: int | None = None) -> tuple[float, int, str, dict]:
    """Run one child to its exit: wall seconds, peak RSS in MiB, stdout, and CPU seconds
    {"tool": user + system of the child and its reaped children (wait4),
     "server": of `server_pid`'s process tree over the same span (NaN when None)}.
    Raises RuntimeError (with the output's tail) when it exits non-zero."""
    out = tempfile.TemporaryFile()
    server0 = tree_cpu(server_pid) if server_pid else float("nan")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    server = (tree_cpu(server_pid) if server_pid else float("nan")) - server0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode(errors="replace")
    if proc.returncode not in (0,):
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {text[-2000:]}")
    return seconds, usage.ru_maxrss // 1024, text, {"tool": usage.ru_utime + usage.ru_stime,
                                                    "server": server}


def confirm(client, bucket: str, src: Path, size: int, drifted: list[Path], who: str) -> None:
    """One listing of the prefix: every source file present at `size` bytes, and each
    drifted file's ETag equal to the MD5 of its new content (a single-part PutObject's
    ETag is its MD5, RFC 1864 / S3 PutObject docs). Raises RuntimeError otherwise."""
    got: dict[str, tuple[int, str]] = {}
    kwargs = {"Bucket": bucket, "Prefix": PREFIX + "/", "MaxKeys": 1000}
    while True:
        page = client.list_objects_v2(**kwargs)
        for o in page.get("Contents", ()):
            rel = o["Key"][len(PREFIX) + 1:]
            if "/.mirrord/" not in "/" + rel:
                got[rel] = (o["Size"], o["ETag"].strip('"'))
        if not page.get("IsTruncated"):
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    want = {p.relative_to(src).as_posix() for p in src.rglob("*.bin")}
    wrong = [k for k in want if got.get(k, (None,))[0] != size]
    if set(got) != want or wrong:
        raise RuntimeError(f"{who} exited 0, but the bucket lists {len(got)} of {len(want)} "
                           f"keys, {len(wrong)} missing or of the wrong size: {sorted(wrong)[:3]}")
    stale = [p for p in drifted
             if got[p.relative_to(src).as_posix()][1] != hashlib.md5(p.read_bytes()).hexdigest()]
    if stale:
        raise RuntimeError(f"{who}: {len(stale)} drifted files still have their old ETag, "
                           f"e.g. {stale[0].relative_to(src)}")


def _r(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def _add_cpu(into: dict[str, list[float]], who: str, cpu: dict, files: int) -> None:
    """Append one run's CPU seconds per 1,000 files of the tree (tool, then server)."""
    into[who].append(round(cpu["tool"] * 1000 / files, 4))
    into["server_" + who].append(round(cpu["server"] * 1000 / files, 4))


def drift(paths: list[Path], start: int, count: int) -> list[Path]:
    """Flip the first byte of `count` files spread over the tree; returns them."""
    step = max(1, len(paths) // count)
    changed = paths[start::step][:count]
    for p in changed:
        data = bytearray(p.read_bytes())
        data[0] ^= 0xFF
        p.write_bytes(bytes(data))
    return changed


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
    weed_pid = weed.proc.pid
    m_times, r_times, rss = [], [], []
    dry_cpu = {"mirrord": [], "rclone": [], "server_mirrord": [], "server_rclone": []}
    for i in range(args.runs):
        s, peak, out, cpu = measured(mirrord_dry, None, weed_pid)
        doc = json.loads(out)["targets"]["s3"]
        assert doc["missing"] == doc["changed"] == doc["extra"] == 0, doc
        m_times.append(s)
        rss.append(peak)
        _add_cpu(dry_cpu, "mirrord", cpu, args.files)
        s, _peak, _, cpu = measured(rclone_dry, env, weed_pid)
        r_times.append(s)
        _add_cpu(dry_cpu, "rclone", cpu, args.files)
        print(f"  run {i + 1}: mirrord {m_times[-1]:.2f}s ({peak} MiB)  rclone {s:.2f}s", flush=True)

    count = max(1, args.files // 100)
    client = weed.client()
    md, rd = [], []
    fix_cpu = {"mirrord": [], "rclone": [], "server_mirrord": [], "server_rclone": []}
    mirrord_fix = [MIRRORD, "-c", str(ini), "reconcile", "--json"]
    rclone_fix = ["rclone", "sync", str(src), f"bench:{bucket}/{PREFIX}",
                  "--checkers", "16", "--transfers", "16"]
    for i in range(args.runs):
        order = ("mirrord", "rclone") if i % 2 == 0 else ("rclone", "mirrord")
        for who in order:   # each repairs its own fresh 1 %, A/B then B/A
            changed = drift(paths, 2 * i + (who == "rclone"), count)
            if who == "mirrord":
                s, _peak, out, cpu = measured(mirrord_fix, None, weed_pid)
                assert json.loads(out)["targets"]["s3"]["changed"] == count, out
                md.append(s)
            else:
                s, _peak, _, cpu = measured(rclone_fix, env, weed_pid)
                rd.append(s)
            confirm(client, bucket, src, args.size, changed, who)
            _add_cpu(fix_cpu, who, cpu, args.files)
            if who == "rclone":   # untimed: mirrord's state database learns rclone's uploads
                timed(mirrord_fix)
        print(f"  drift {i + 1}: mirrord {md[-1]:.2f}s  rclone {rd[-1]:.2f}s", flush=True)

    result = {
        "files": args.files, "runs": args.runs,
        "in_sync_dry_run": {"mirrord_median_s": round(statistics.median(m_times), 3),
                            "rclone_median_s": round(statistics.median(r_times), 3),
                            "ratio_mirrord_over_rclone": round(statistics.median(m_times)
                                                               / statistics.median(r_times), 3),
                            "mirrord_peak_rss_mib": max(rss),
                            "mirrord_s": _r(m_times), "rclone_s": _r(r_times),
                            "cpu_s_per_1k_files": dry_cpu},
        "one_percent_drift": {"changed": count,
                              "mirrord_median_s": round(statistics.median(md), 3),
                              "rclone_median_s": round(statistics.median(rd), 3),
                              "mirrord_s": _r(md), "rclone_s": _r(rd),
                              "cpu_s_per_1k_files": fix_cpu},
    }
    print(json.dumps(result, indent=2))
    ok = result["in_sync_dry_run"]["ratio_mirrord_over_rclone"] <= 1.0 and max(rss) < 200
    print("PASS" if ok else "FAIL: slower than rclone or over 200 MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
