"""The remote calls around one rsync run: the run itself, and what is checked around it.

run_rsync builds and runs `rsync --files-from=- --from0 --protect-args` for one group
(see mirrord.targets.rsync.batch for the order of a batch's work); verify decides,
after a partial failure, which items did not arrive (one remote stat of the group);
dest_made makes a source's `dest` a real directory on the host before the first run
into it; unlink_parents removes symlinks planted where items' parent directories go.
Each takes the RsyncTarget whose connection, root and options it uses.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
from typing import TYPE_CHECKING

from mirrord.errors import PermanentError, RetryableError
from mirrord.targets.rsync.plan import Want
from mirrord.targets.rsync.remote import (MKDIRS, RSYNC_TMP, STAT_MANY, UNLINK_PARENTS,
                                          classify_stderr, item_stderr, parse_record, q)

if TYPE_CHECKING:
    from mirrord.targets.rsync.target import RsyncTarget


def dest_made(t: RsyncTarget, dest: bytes) -> bool:
    """Make a source's `dest` directory (`[source] dest`) a real directory on the host,
    one component at a time (remote.MKDIRS: a symlink or file in the way is replaced),
    once per open() of the target. rsync's receiver changes into its destination
    argument, <root>/<dest>/, following a symlink planted there: the batch wrote outside
    the root and reported success (tests/targets/test_dest_prefix_planted.py). False
    when it cannot be made."""
    if dest in t.dests_made:
        return True
    try:
        proc = t.conn.run(t.in_root(MKDIRS + b"mkdirs %s" % q(b"./" + dest)))
    except (RetryableError, PermanentError):
        return False
    if proc.returncode != 0:
        return False
    t.dests_made.add(dest)
    return True


def unlink_parents(t: RsyncTarget, dest: bytes, wants: list[Want]) -> bool:
    """Remove the symlinks standing where these items' parent directories go (planted
    on the host: rsync's receiver will not follow them, and the items failed); True
    when one was removed. A removal that fails leaves the items' errors as they are."""
    prefix = b"./" + dest + b"/" if dest else b"./"
    try:
        proc = t.conn.run(t.in_root(UNLINK_PARENTS),
                               b"\0".join(prefix + w.rel for w in wants) + b"\0")
    except (RetryableError, PermanentError):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip(b"\0"))


def run_rsync(t: RsyncTarget, src: bytes, dest: bytes, rels: list[bytes], *, copy_links: bool,
           rsync_path: bytes | None = None):
    """One rsync run; `rsync_path` replaces the target's own (inrun.wrapper), else the
    receiver starts behind the root's guard (RsyncTarget.receiver)."""
    o = t.opts
    rsync_path = rsync_path if rsync_path is not None else t.receiver()
    rsh = " ".join(shlex.quote(a) for a in t.conn.client_argv())
    host = f"[{o.host}]" if ":" in o.host else o.host
    remote = os.fsencode(f"{o.user}@{host}:" if o.user else f"{host}:") + t.root
    remote += (b"/" + dest if dest else b"") + b"/"
    # --ignore-times: every path handed over needs sending (the engine decided so); rsync's
    # own size+mtime quick check would skip a same-size change made within the same second.
    # --force (rsync(1): "delete a non-empty directory when it is to be replaced by a
    # non-directory", and --delete-missing-args removing one whose source went) only where
    # nothing is kept. rsync's sender looks at the source again, after the plan's look: a
    # directory item whose source became a file, or went, in between (`rm -r d; echo > d`)
    # had the host's d and every file below it removed by the run, unkept (a 'dir' item
    # keeps nothing). Without it that item fails alone and the change's own events send it,
    # kept; a put over a directory needs no --force there (KEEP_BODY moves it away first).
    force = [] if t.keeps_deleted else ["--force"]
    argv: list[str | bytes] = [
        "rsync", "--protect-args", "--ignore-times", "--files-from=-", "--from0", "--times",
        "--perms", *force,
        "--delete-missing-args", b"--temp-dir=" + t.root + b"/" + RSYNC_TMP,
        f"--timeout={max(30, math.ceil(o.connect_timeout * 3))}", "-e", rsh]
    if copy_links:
        # staged: the staging parents are 0755 stand-ins; never push their modes/mtimes
        # onto directories on the host (missing ones are made with the host's defaults)
        argv += ["--copy-links", "--no-implied-dirs"]
    if dest:
        argv.append("--mkpath")
    if rsync_path is not None:
        argv.append(b"--rsync-path=" + rsync_path)
    elif o.rsync_path != "rsync":
        argv.append(f"--rsync-path={o.rsync_path}")
    argv += ["--", src + b"/", remote]
    t.count_rsync_run()
    with t.conn.session():
        return subprocess.run(argv, input=b"\0".join(rels) + b"\0", capture_output=True)


def verify(t: RsyncTarget, dest: bytes, wants: list[Want],
            proc: subprocess.CompletedProcess) -> dict[int, Exception]:
    """After a partial failure: one remote stat of the group says which items failed."""
    prefix = b"./" + dest + b"/" if dest else b"./"
    try:
        check = t.conn.run(t.in_root(STAT_MANY), b"\0".join(prefix + w.rel for w in wants) + b"\0")
    except (RetryableError, PermanentError) as exc:
        return {w.index: exc for w in wants}
    remote: dict[bytes, tuple[bytes, int, int]] = {}
    for rec in filter(None, check.stdout.split(b"\0")):
        kind, path, size, ns, _mode = parse_record(rec)
        remote[path] = (kind, size, ns)
    slack = max(t.features.mtime_precision, 1e-6) * 1e9
    errors: dict[int, Exception] = {}
    for w in wants:
        got = remote.get((prefix + w.rel)[2:])
        if w.kind == "dir":
            ok = got is not None and got[0] == b"d"
        else:
            ok = (got is not None and got[0] == b"f" and got[1] == w.size
                  and abs(got[2] - w.mtime_ns) <= slack)
        if not ok:   # rsync names it relative to its destination: <root>/<dest>/
            errors[w.index] = classify_stderr(
                item_stderr(proc.stderr, w.rel), f"{t.describe()}: rsync exit "
                f"{proc.returncode}, {os.fsdecode((prefix + w.rel)[2:])!r} not transferred")
    return errors
