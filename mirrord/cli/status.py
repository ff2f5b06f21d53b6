"""`mirrord status`: state, lag, pending changes, oldest pending age, last shipped, failures, per target.

Reads the state database read-only, so it works whether the daemon runs or not.
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import time

from mirrord import journal, locks, submounts
from mirrord.cli.output import print_json
from mirrord.config import Config
from mirrord.journal import opening
from mirrord.journal.holds import read_holds
from mirrord.reconcile.result import state_counts
from mirrord.trash.listing import shown_path
from mirrord.logsetup import Verbatim


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="show the backlog and health per target")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def daemon_running(cfg: Config) -> int | None:
    """The pid holding the daemon lock (-1 when not known), or None (mirrord.locks)."""
    return locks.holder(cfg.mirrord.state_dir, locks.DAEMON)


def collect(cfg: Config) -> dict:
    now = time.time()
    doc: dict = {"config": str(cfg.path), "time": now, "daemon_pid": daemon_running(cfg),
                 "targets": {}, "daemon": None, "sources": {}}
    path = cfg.mirrord.journal_path
    if not opening.exists(path):   # removed beside its log: JournalUnusable, no "yet"
        doc["note"] = f"no state database yet at {path}"
        # a row per target all the same, its figures unknown (None: shown as "-"): the table
        # had none, as if nothing were configured (a new user's report)
        for name in cfg.targets:
            doc["targets"][name] = dict.fromkeys(_FIGURES) | {
                "state": "unknown", "lag_seconds": None,
                "state_reason": "no state database yet: the daemon has not run with this state_dir"}
        return doc
    db = journal.connect(path, readonly=True)
    try:
        return _read(cfg, db, doc, now)
    except sqlite3.DatabaseError as exc:   # a page read beyond connect's probe (J: a
        raise opening.unusable(path, exc, readonly=True) from None   # truncated file + WAL)
    finally:
        db.close()


# a target's figures from the state database (collect); all None when there is none yet
_FIGURES = ("pending", "pending_bytes", "oldest_pending_age", "failing", "shipped", "failed",
            "waiting", "busy", "last_shipped_path", "last_shipped_at", "last_error",
            "last_error_at", "last_reconcile", "trash")


def _read(cfg: Config, db, doc: dict, now: float) -> dict:
    """The rest of collect(), on the open read-only connection `db`."""
    names = list(cfg.targets)
    for name, b in journal.read_backlog(db, names).items():
        extra = b.extra
        doc["targets"][name] = {
            "pending": b.pending, "pending_bytes": b.pending_bytes,
            "oldest_pending_age": round(now - b.oldest, 3) if b.oldest else 0.0,
            "failing": b.failing, "shipped": extra.get("shipped", 0),
            "failed": extra.get("failed", 0), "waiting": b.waiting, "busy": extra.get("busy", 0),
            "last_shipped_path": _verbatim(extra.get("last_path")),
            "last_shipped_at": extra.get("last_at"), "last_error": extra.get("last_error"),
            "last_error_at": extra.get("last_error_at"),
            "last_reconcile": journal.read_state(db, f"reconcile:{name}"),
            "trash": journal.read_state(db, f"trash:{name}"),
        }
    doc["daemon"] = journal.read_state(db, "daemon")
    stored = (doc["daemon"] or {}).get("target_states") or {}
    age = now - float((doc["daemon"] or {}).get("updated") or now)
    for name, t in doc["targets"].items():
        t.update(target_state(stored.get(name), running=doc["daemon_pid"] is not None,
                              age=age, interval=cfg.mirrord.heartbeat_interval))
        if not cfg.sources_for(name):
            # the daemon never opens it, yet its state table calls it in_sync: the shipped
            # mirrord.ini's example s3 and rsync sections showed as in_sync under `make run`
            t.update(state="unused", lag_seconds=None,
                     state_reason="no [source:*] lists it in targets: never opened")
    held = {h.source: h.to_json() for h in read_holds(db)}
    alarms = (doc["daemon"] or {}).get("alarms") or {} if doc["daemon_pid"] is not None else {}
    for src in cfg.sources:
        remembered = submounts.remembered(
            journal.read_state(db, submounts.STATE_PREFIX + src.name))
        mounts = submounts.SubMounts(src.name, str(src.path), remembered,
                                     excluded=functools.partial(src.excluded, is_dir=True))
        mounts.refresh()   # the mount table: a bind mount keeps its st_dev once unmounted
        doc["sources"][src.name] = {"catchup": journal.read_state(db, f"catchup:{src.name}"),
                                    "lost_mounts": mounts.lost(),
                                    **alarm_state(alarms.get(src.name), held.get(src.name))}
    return doc


STALE_AFTER = 15.0   # seconds: a state document older than this (and 3 heartbeats) is stale


def alarm_state(alarm: dict | None, held: dict | None) -> dict:
    """A source's mass-change alarm (the running daemon's state row: mirrord.daemon_alarm)
    and its held deletes (the journal's holds table, so shown with the daemon stopped too).
    `alarm` is "alarm" while it fires or deletes are held, else "ok"."""
    firing = bool(alarm and alarm.get("state") == "alarm")
    return {"alarm": "alarm" if firing or held else "ok", "alarm_detail": alarm,
            "deletes_held": held}


def target_state(stored: dict | None, *, running: bool, age: float = 0.0,
                 interval: float = 5.0) -> dict:
    """A target's `state`, `lag_seconds` and `state_reason` from the daemon's state document
    ("target_states": {target: mirrord.target_state.TargetState.to_json()}). `unknown` when
    the daemon is not running (a stored state is stale once it stops) or has not decided yet,
    and when the document is `age` seconds old, more than three heartbeat `interval`s
    (seconds) and STALE_AFTER: the daemon cannot write the state database (a full disk,
    another process holding its lock) or its loop is stuck, and the state it last wrote
    (in_sync, say) no longer says anything (a breaker: a full state disk, 105 changes
    unshipped, status in_sync)."""
    if not stored or not running:
        last = f"; last known {stored.get('state')}" if stored else ""
        why = "daemon not running" if not running else "no heartbeat yet"
        return {"state": "unknown", "lag_seconds": None, "state_reason": why + last}
    if age > max(3 * interval, STALE_AFTER):
        return {"state": "unknown", "lag_seconds": None,
                "state_reason": f"the daemon's last update is {age:.0f}s old: it cannot write "
                                f"the state database (disk full? another process holding its "
                                f"lock?) or its loop is stuck; last known {stored.get('state')}"}
    return {"state": stored.get("state", "unknown"), "lag_seconds": stored.get("lag_seconds"),
            "state_reason": stored.get("reason", "")}


def _line(text: object) -> str:
    """Free text (an error, a reason) on one line of the table: a multi-line error (an ssh
    or rsync stderr, a traceback's text) split its line and read as more rows."""
    return " ".join(str(text).split())


def _age(ts: float | None, now: float) -> str:
    if not ts:
        return "-"
    secs = max(0.0, now - ts)
    if secs < 120:
        return f"{secs:.1f}s ago"
    if secs < 7200:
        return f"{secs / 60:.0f}m ago"
    return f"{secs / 3600:.1f}h ago"


def _source_lines(name: str, h: dict) -> list[str]:
    """What an operator must know about a source: a lost root (mirrord.daemon_roots),
    unwatched directories (degraded until every watch is in place) and a file system whose
    other clients raise no events."""
    lines = []
    if h.get("root_lost"):
        lines.append(f"  source {name}: LOST: {_line(h['root_lost'])}; nothing of it is "
                     f"watched or deleted until it is back (checked every second)")
    if h.get("unwatched_directories"):
        first = ", ".join(shown_path(p) for p in h.get("unwatched_paths") or [])
        lines.append(f"  source {name}: DEGRADED: {h['unwatched_directories']} directories not "
                     f"watched (retried; rescanned every few seconds meanwhile): {first}")
    if (h.get("events_unread_for") or 0) > 1:
        lines.append(f"  source {name}: the watcher has not emptied the kernel's event queue "
                     f"for {h['events_unread_for']:.0f}s: it reads behind the file system's "
                     f"writes, and changes not yet read are not in the backlog")
    if h.get("remote_writes_unseen"):
        lines.append(f"  source {name}: on {h.get('fstype')}: changes by other clients of this "
                     f"file system are mirrored only by reconcile")
    return lines


def held_count(held: dict) -> str:
    """`held` (Hold.to_json: `waiting` distinct paths, `targets`) as the operator reads it:
    '21 deletes held' or '21 deletes held on 3 targets' (a path held on 3 targets is one
    delete; always 'deletes', the word scripts look for)."""
    n, targets = held.get("waiting", 0), held.get("targets") or 0
    return f"{n} deletes held" + (f" on {targets} targets" if targets > 1 else "")


def _alarm_lines(name: str, h: dict) -> list[str]:
    """The mass-change alarm: firing (count in the window) and held deletes (how to resume);
    file systems mounted below the root that are gone (their deletes are refused)."""
    lines = [f"  source {name}: DEGRADED: the file system mounted at {shown_path(rel)} (below "
             f"the root) is "
             f"gone: deletes below it are refused until it is mounted again (retired for good: "
             f"remove the empty mount point directory)" for rel in h.get("lost_mounts") or []]
    a, held = h.get("alarm_detail") or {}, h.get("deletes_held")
    if a.get("state") == "alarm":
        lines.append(f"  source {name}: alarm: {a.get('count')} deletes or overwrites within "
                     f"{a.get('alarm_window', 0):g}s (alarm_deletes = {a.get('alarm_deletes')})")
    if held:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(held["since"]))
        why = f" ({_line(held['reason'])})" if held.get("reason") else ""
        # not "alarm:": a capped comparison holds the deletes too (its reason says so)
        # none waiting (an alarm on overwrites alone): "ship them" would name nothing
        what = ("ship them" if held.get("waiting") else
                "none waiting, and deletes made from now on wait too; lift the hold")
        lines.append(f"  source {name}: {held_count(held)} since {since}{why}; "
                     f"{what}: mirrord resume-deletes --source {name}")
    return lines


def render(doc: dict) -> str:
    now = doc["time"]
    lines = []
    pid = doc.get("daemon_pid")
    d = doc.get("daemon") or {}
    state = f"running (pid {pid})" if pid else "not running"
    lines.append(f"daemon: {state}" + (f", last update {_age(d.get('updated'), now)}" if d else ""))
    if d:
        lines.append(f"  watched directories {d.get('watched_directories', 0)}, inotify overflows "
                     f"{d.get('overflows', 0)}, watch errors {d.get('watch_errors', 0)}, "
                     f"journal errors {d.get('journal_errors', 0)}, main-loop errors "
                     f"{d.get('cycle_errors', 0)}")
    for name, h in (d.get("sources") or {}).items():
        lines.extend(_source_lines(name, h))
    for name, h in (doc.get("sources") or {}).items():
        lines.extend(_alarm_lines(name, h))
    if doc.get("note"):
        lines.append(doc["note"])
    header = (f"{'TARGET':<12} {'STATE':<12} {'LAG':>7} {'PENDING':>8} {'OLDEST':>9} {'FAILING':>8} "
              f"{'SHIPPED':>9} {'FAILED':>7}  LAST SHIPPED")
    lines.append(header)
    for name, t in doc["targets"].items():
        oldest = f"{t['oldest_pending_age']:.1f}s" if t["pending"] else "-"
        last = shown_path(t["last_shipped_path"] or "-")
        lag = f"{t['lag_seconds']:.1f}s" if t.get("lag_seconds") is not None else "-"
        pending, failing, shipped, failed = (
            "-" if t[k] is None else t[k] for k in ("pending", "failing", "shipped", "failed"))
        lines.append(f"{name:<12} {t.get('state', 'unknown'):<12} {lag:>7} {pending:>8} "
                     f"{oldest:>9} {failing:>8} {shipped:>9} "
                     f"{failed:>7}  {last} ({_age(t['last_shipped_at'], now)})")
        if t.get("state") != "in_sync" and t.get("state_reason"):
            lines.append(f"{'':<12} {t['state']}: {_line(t['state_reason'])}")
        if t.get("last_error"):
            lines.append(f"{'':<12} last error {_age(t['last_error_at'], now)}: "
                         f"{_line(t['last_error'])}")
        if t.get("waiting"):   # a file still open for writing: retried, not failed
            lines.append(f"{'':<12} waiting for writers: {t['waiting']} files still open for "
                         f"writing or changing at the source (sent once quiet)")
        rec = t.get("last_reconcile")
        if rec:
            lines.append(f"{'':<12} last reconcile {_age(rec.get('finished_at') or rec.get('at'), now)}: "
                         + ", ".join(f"{k} {v}" for k, v in state_counts(rec).items())
                         + _reconcile_verdict(rec))
        trash = t.get("trash")
        if trash:
            lines.append(f"{'':<12} {_trash_line(trash, now)}")
    return "\n".join(lines)


def _reconcile_verdict(rec: dict) -> str:
    """What the counts alone do not say: "; FAILED, N errors: the first" when the pass had
    errors (a listing that failed left every count 0, which read as a clean pass), else
    "; NOT in sync" when it found the target not in sync; "" for a clean pass."""
    errors = rec.get("errors") or []
    if errors:
        first = _line(errors[0])
        count = max(int(rec.get("error_count") or 0), len(errors))   # errors is capped
        return (f"; FAILED, {count} error{'s' if count != 1 else ''}, NOT in sync"
                f" (first: {first})")
    return "; NOT in sync" if rec.get("in_sync") is False else ""


def _trash_line(trash: dict, now: float) -> str:
    """The keep_deleted line: files and bytes kept, the oldest kept change, as of the last
    retention run (mirrord.trash.retention.Summary.to_state)."""
    oldest = trash.get("oldest")
    text = (f"trash: {trash.get('files', 0)} files, {trash.get('bytes', 0)} bytes kept"
            + (f", oldest {_age(oldest, now)}" if oldest else "")
            + f" (checked {_age(trash.get('at'), now)})")
    if trash.get("error"):
        text += f"; retention error: {_line(trash['error'])}"
    return text


def run(args: argparse.Namespace, cfg: Config) -> int:
    doc = collect(cfg)
    if args.json:
        print_json(doc, indent=2, default=str)
    else:
        print(render(doc))
    return 0


def _verbatim(path: str | None) -> str | None:
    """A file's path for --json: as it is named (logsetup.Verbatim), not pattern-redacted."""
    return None if path is None else Verbatim(path)
