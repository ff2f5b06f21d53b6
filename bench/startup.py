"""4. Start-up on a large tree: time until watching, time until the in-sync check is done,
and peak memory.

The scenario is a restart on a tree that is already mirrored (a reboot or a
package upgrade): the tree (empty files, `startup_files` in `startup_dirs`
two-level directories) is first mirrored once by mirrord to a local directory
(set-up, not timed), which also fills mirrord's state database; lsyncd gets a
hard-linked copy of that mirror (same sizes and mtimes), so its initial rsync
finds nothing to send either. Then, alternating:
- mirrord: exec -> `msg=watching` (every directory watched; mirrord adds its
  watches before it opens its state database or its targets) -> `catch-up done`
  (the tree compared with the state database). Peak RSS is VmHWM of the
  daemon read after the catch-up.
- lsyncd: exec -> its "recursive startup rsync" log line (lsyncd adds every
  watch before it starts that rsync) -> "Startup of ... finished" (the initial
  rsync compared the whole tree). Peak RSS is VmHWM of the lsyncd process
  (its rsync child is not counted).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from bench.common import (Context, Lsyncd, Mirrord, count_files, fixed, have,
                          local_target_ini, make_tree, mirrord_config, vm_hwm_mib, wait_until)

NAME = "startup"
TIMEOUT = 3600.0


def seed(ctx: Context, tree: Path, n: int) -> tuple[Path, Path]:
    """Mirror the tree once with mirrord (fills its state); returns (config, mirror dir)."""
    work = ctx.fresh_dir("startup-m")
    dest = work / "mirror"
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=tree,
                         target_ini=local_target_ini(dest, fsync=False),
                         watcher=ctx.watcher)
    m = Mirrord(ctx, cfg)
    t0 = time.monotonic()
    try:
        m.start()
        if wait_until(lambda: count_files(dest) >= n, timeout=TIMEOUT, interval=1.0) is None:
            raise RuntimeError("seeding mirrord's state did not finish")
        # let the last acks reach the journal before the restart
        time.sleep(2.0)
    finally:
        m.stop()
    ctx.log(f"startup: seeded mirror of {n:,} files in {time.monotonic() - t0:.1f} s")
    return cfg, dest


def run_mirrord(ctx: Context, cfg: Path) -> dict:
    m = Mirrord(ctx, cfg)
    try:
        m.start(wait=False)
        watching = m.wait_watching(TIMEOUT) - m.t_start  # one source: its watches are all in place
        m.wait_running(TIMEOUT)
        done = m.wait_catchup(TIMEOUT) - m.t_start
        found = re.search(r'catch-up done.*?proposed=("(?:[^"\\]|\\.)*"|\S+)', m.run_log())
        proposed = found.group(1) if found else "?"
        return {"watching": watching, "checked": done, "rss": vm_hwm_mib(m.proc.pid),
                "proposed": proposed}
    finally:
        m.stop()


def run_lsyncd(ctx: Context, tree: Path, mirror: Path) -> dict:
    work = ctx.fresh_dir("startup-l")
    dest = work / "mirror"
    subprocess.run(["cp", "-al", str(mirror), str(dest)], check=True)
    lsy = Lsyncd(ctx, work, tree, target=dest, delay=0)
    try:
        lsy.start()
        watching = lsy.wait_watching(TIMEOUT) - lsy.t_start
        done = lsy.wait_started(TIMEOUT) - lsy.t_start
        return {"watching": watching, "checked": done, "rss": vm_hwm_mib(lsy.proc.pid)}
    finally:
        lsy.stop()
        subprocess.run(["rm", "-rf", str(dest)], check=False)


def run(ctx: Context) -> None:
    p = ctx.profile
    tree = ctx.fresh_dir("startup-tree") / "tree"
    tree.mkdir()
    ctx.log(f"startup: making {p.startup_files:,} empty files in {p.startup_dirs:,} dirs")
    make_tree(tree, p.startup_files, p.startup_dirs, size=fixed(0), seed=4)
    case = f"{p.startup_files:,} files in {p.startup_dirs:,} dirs, already mirrored"
    rows = {
        "watching": ctx.row("4 start-up", case, "seconds until watching",
                            "lsyncd (until its startup rsync begins)"),
        "checked": ctx.row("4 start-up", case, "seconds until in-sync check done",
                           "lsyncd (until its startup rsync finished)"),
        "rss": ctx.row("4 start-up", case, "peak RSS MiB", "lsyncd (VmHWM, rsync child excluded)"),
    }
    cfg, mirror = seed(ctx, tree, p.startup_files)
    lsyncd_ok = have("lsyncd")
    for rep in range(ctx.reps):
        order = ["mirrord", "lsyncd"] if rep % 2 == 0 else ["lsyncd", "mirrord"]
        for tool in order:
            if tool == "lsyncd" and not lsyncd_ok:
                continue
            try:
                res = run_mirrord(ctx, cfg) if tool == "mirrord" else run_lsyncd(ctx, tree, mirror)
            except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                ctx.log(f"startup {tool}: FAILED {exc}")
                rows["watching"].notes.append(f"{tool} rep {rep + 1} failed: {str(exc)[:200]}")
                continue
            ctx.log(f"startup {tool} rep {rep + 1}: watching after {res['watching']:.2f} s, "
                    f"checked after {res['checked']:.2f} s, peak RSS {res['rss']:.0f} MiB"
                    + (f", proposed {res['proposed']}" if "proposed" in res else ""))
            for key, row in rows.items():
                (row.mirrord if tool == "mirrord" else row.other).append(res[key])
            if res.get("proposed") not in (None, "{}", '"{}"'):
                rows["checked"].notes.append(f"mirrord's catch-up proposed {res['proposed']} "
                                             f"(expected nothing on an in-sync tree)")
