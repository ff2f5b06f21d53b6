"""The repetitions of one mirrord-vs-peer comparison, with the arms alternating.

Why a module of its own: the burst and initial-sync workloads both run, per target,
mirrord's arm and a peer's arm each repetition, and (--keep-paired) mirrord twice,
with and without `keep_deleted`. On a shared 2-core machine whose load swings from
1 to 12 within minutes, two separate runs of the suite cannot tell a 10% cost from
the noise; arms run back to back within each repetition can. The order rotates each
repetition (A B C, B C A, C A B) so no arm always runs first or last.

Before the repetitions, every arm runs ctx.warmup times unrecorded (`--warmup`, 1 by
default). Without it the run's first arm paid alone for the server's and the page cache's
first use: in the S3 initial sync, rotation put mirrord first in repetition 1 every run,
and that one arm took 13.5 s (the server 14.7 CPU s) against 8.3-9.6 s (about 10.5 CPU s)
for the other four, the same outlier in two runs of 2026-12-02 and 12-03.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

from bench.ack import Arm, cpu_summary, record
from bench.common import Context, Row, median


@dataclass
class Pair:
    """One comparison: the row's identity, mirrord's arm and the peer's (each called as
    fn(ctx) -> Arm), the peer's short name, whether it is installed, and files per arm."""

    workload: str
    case: str
    peer: str
    mine: Callable[[Context], Arm]
    theirs: Callable[[Context], Arm]
    tool: str
    peer_ok: bool
    files: int


@contextlib.contextmanager
def keeping(ctx: Context, duration: str | None) -> Iterator[None]:
    """ctx.keep_deleted set to `duration` (None: off) while inside: the target ini helpers
    and ctx.row read it."""
    before = ctx.keep_deleted
    ctx.keep_deleted = duration
    try:
        yield
    finally:
        ctx.keep_deleted = before


def variants(ctx: Context) -> list[str | None]:
    """mirrord's keep_deleted settings to run: both (off, then on) with --keep-paired."""
    return [None, ctx.keep_paired] if ctx.keep_paired else [ctx.keep_deleted]


def run_pair(ctx: Context, p: Pair, label: str) -> None:
    """ctx.reps repetitions of every mirrord variant and the peer; one row per variant,
    the peer's figures recorded on each. A failed arm is noted on the row(s), not raised."""
    rows: dict[str | None, Row] = {}
    for v in variants(ctx):
        with keeping(ctx, v):
            rows[v] = ctx.row(p.workload, p.case, "seconds to own ack", p.peer)
    if not p.peer_ok:
        for row in rows.values():
            row.notes.append(f"{p.tool} not installed: peer skipped")
    arms: list[tuple[str, str | None]] = [("mirrord", v) for v in rows]
    if p.peer_ok:
        arms.append(("peer", None))
    for w in range(ctx.warmup):
        for who, v in arms:
            name = _name(p, who, v)
            try:
                arm = _run_arm(ctx, p, who, v)
            except Exception as exc:  # noqa: BLE001 - a warm-up's failure is only logged
                ctx.log(f"{label} {name} warm-up {w + 1}: FAILED {exc}")
                continue
            ctx.log(f"{label} {name} warm-up {w + 1} (not recorded): {arm.seconds:.2f} s")
    if ctx.warmup:
        for row in rows.values():
            row.notes.append(f"every arm ran {ctx.warmup}× unrecorded first (warm-up)")
    loads: list[float] = []
    for rep in range(ctx.reps):
        shift = rep % len(arms)
        for who, v in arms[shift:] + arms[:shift]:
            name = _name(p, who, v)
            try:
                arm = _run_arm(ctx, p, who, v)
            except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                ctx.log(f"{label} {name} rep {rep + 1}: FAILED {exc}")
                for row in (rows.values() if who == "peer" else [rows[v]]):
                    row.notes.append(f"{name} rep {rep + 1} failed: {str(exc)[:200]}")
                continue
            for row in (rows.values() if who == "peer" else [rows[v]]):
                record(row, "mirrord" if who == "mirrord" else "other", arm, p.files)
            loads.append(ctx.load())
            ctx.log(f"{label} {name} rep {rep + 1}: {arm.seconds:.2f} s "
                    f"({p.files / arm.seconds:.0f} files/s); CPU {arm.tool_cpu:.2f} s, "
                    f"server {arm.server_cpu:.2f} s; load {loads[-1]:.1f}")
    _paired_ratio(ctx, rows, label)
    for v, row in rows.items():
        if loads:
            row.notes.append(f"1-minute load average after the arms: {min(loads):.1f}–"
                             f"{max(loads):.1f} (median {median(loads):.1f})")
        if row.cpu.get("mirrord"):
            ctx.log(f"{label} mirrord{f' keep {v}' if v else ''} median: "
                    f"{cpu_summary(row, 'mirrord')}")
    some = next(iter(rows.values()))
    if some.cpu.get("other"):
        ctx.log(f"{label} {p.tool} median: {cpu_summary(some, 'other')}")


def _name(p: Pair, who: str, v: str | None) -> str:
    """An arm's name in the log: the peer's tool, or mirrord with its keep_deleted."""
    return p.tool if who == "peer" else ("mirrord" + (f" keep {v}" if v else ""))


def _run_arm(ctx: Context, p: Pair, who: str, v: str | None) -> Arm:
    """One arm: mirrord with keep_deleted `v`, or the peer. Raises what the arm raised."""
    with keeping(ctx, v):
        return (p.mine if who == "mirrord" else p.theirs)(ctx)


def _paired_ratio(ctx: Context, rows: dict[str | None, Row], label: str) -> None:
    """With --keep-paired: with-keep ÷ without-keep seconds per repetition (the two ran back
    to back, so the machine's drift between them is small), and their median, as a note on
    the keep row: the figure to quote for what keeping costs."""
    if not ctx.keep_paired or len(rows) != 2:
        return
    plain, kept = rows[None].mirrord, rows[ctx.keep_paired].mirrord
    if len(plain) != len(kept) or not plain:
        return   # an arm failed: the repetitions no longer pair up
    ratios = [k / p for p, k in zip(plain, kept)]
    note = (f"with ÷ without keep_deleted, per repetition: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}; median {median(ratios):.2f}")
    rows[ctx.keep_paired].notes.append(note)
    ctx.log(f"{label}: {note}")
