"""Whether `mirrord undelete --to-source` may write into a source root at all.

An empty root is what an unmount leaves (mirrord.daemon_roots.root_back, the daemon's
own test of a root "back"). Written into, it held one file, so it read as the volume
back: the daemon's comparison then deleted on every target whatever the root lacked (a
breaker: a lazily unmounted tmpfs, one file restored into the bare mount point, 902 of
903 files gone from three mirrors, running or at the next start). So a root the running
daemon reports lost takes nothing, whatever it holds; with no daemon running, a root
that is empty while the state database records files shipped from it, or on another
mount (or, empty, another file system type) than the daemon last watched it on, takes
something only with --force (a breaker's fresh empty volume of the same type, a daemon
never run, a bind mount lost while stopped: each was written into). An empty root the daemon watches, or on the same file system (`rm -rf
uploads/*`: restoring it is what undelete is for), is restored as before; a root that
cannot be read takes nothing.
"""

from __future__ import annotations

import os
import sqlite3

from mirrord import journal, locks
from mirrord.config import Config
from mirrord.errors import JournalUnusable
from mirrord.journal import opening
from mirrord.fsutil import filesystem_type, mount_point


def refusal(cfg: Config, source: str, root: str, *, force: bool) -> str | None:
    """Why nothing may be restored into `root`, the path of [source:`source`], or None
    (see the module docstring; `force`: --force). Reads the root (one stat, one directory
    entry, its file system type) and the daemon's last status document in the state
    database. Raises nothing."""
    try:
        with os.scandir(root) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        return f"the source root {root} cannot be read ({exc.strerror}): nothing is written into it"
    last, records_files = _recorded(cfg, source)
    if locks.holder(cfg.mirrord.state_dir, locks.DAEMON) is not None:
        if last.get("state") == "lost":
            return (f"the running daemon reports the source root {root} lost (mirrord "
                    f"status): nothing is written into it until it is back")
        return None
    if force:
        return None
    advice = "mount the uploads volume, or use --force if this is it"
    if empty and records_files:
        return (f"the source root {root} is empty while the state database records files "
                f"shipped from it (a file system not mounted?), and no daemon runs to tell: "
                f"nothing is written into it; {advice}")
    was, now = last.get("mount_point"), mount_point(root)
    if was and now and was != now:
        return (f"the source root {root} is on the mount at {now}, where the daemon last "
                f"watched it on the one at {was} (a file system not mounted?): nothing is "
                f"written into it; {advice}")
    was, now = last.get("fstype"), filesystem_type(root)
    if empty and was and now and was != now:
        return (f"the source root {root} is empty and on {now}, where the daemon last "
                f"watched it on {was} (a file system not mounted?): nothing is written "
                f"into it; {advice}")
    return None


def _recorded(cfg: Config, source: str) -> tuple[dict, bool]:
    """From one read of the state database: the source's entry in the daemon's last status
    document (its 'state': 'ok', 'lost', 'degraded'; 'fstype', 'mount_point'), and
    whether a path shipped from `source` is recorded (its `shipped` rows). ({}, False)
    when there is no database or it cannot be read."""
    try:
        if not opening.exists(cfg.mirrord.journal_path):
            return {}, False
        db = journal.connect(cfg.mirrord.journal_path, readonly=True)
        try:
            doc = journal.read_state(db, "daemon") or {}
            files = db.execute("SELECT 1 FROM shipped WHERE source = ? LIMIT 1",
                               (source,)).fetchone() is not None
        finally:
            db.close()
    except (JournalUnusable, OSError, ValueError, sqlite3.Error):
        return {}, False
    entry = (doc.get("sources") or {}).get(source) if isinstance(doc, dict) else None
    return (entry if isinstance(entry, dict) else {}), files
