"""keep_deleted on the rsync target: the trash under `<root>/.mirrord/trash` on the mirror host.

RsyncTrash does, for one RsyncTarget, what mirrord.targets.base.Target.keep,
keep_many and trash_* promise, each as ONE remote command over the target's
ssh connection (a whole keep batch in one round trip, like remote.META_SCRIPT);
a batch's marked puts run KEEP_BODY (keep_script.py) inside their rsync run instead
(inrun.py).
Paths never reach the shell as code: keep records are quoted words or arrive on
stdin through xargs -0, single paths are quoted by remote.q().

Keeping never copies a body: an overwritten file gets a second hard link in
the trash (`ln`; the rsync that follows renames its temp file over the path, so
the kept inode keeps the old bytes); a deleted file is linked then unlinked; a
removed directory is ONE `mv` of the directory. `ln` fails with EXDEV instead
of copying; before a directory `mv` (GNU mv copies on EXDEV) the device numbers
(find %D) of the path and of the trash are compared. A place already holding
a kept entry is never replaced (`ln` refuses an existing name; the script
checks first), so a retry with the same stamp keeps nothing twice. A put's request
may carry the version it sends (size, mtime ns, sha256 of its bytes): a regular file that
already holds those bytes, whatever its mtime, is not kept (nothing is destroyed; issue
17, and a touch seen live, helper-161, as on S3 and local); same size and mtime with
other bytes is kept. A symlink
anywhere on the path means nothing is there (list() never shows one either),
so a planted link cannot make us move anything outside the root.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Iterator, Sequence

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.failures import classify_oserror
from mirrord.targets.model import Entry
from mirrord.targets.mtime import format_ns, parse_find_ns
from mirrord.targets.paths import check_relpath
from mirrord.targets.rsync import listing
from mirrord.targets.rsync.keep_script import _answers, keep_records, keep_script
from mirrord.targets.rsync.remote import (EXIT_ABSENT, LINKED, LONG_TIMEOUT, MKDIRS, NOLINK,
                                          RSYNC_TMP, classify_stderr, q, record_entry)
from mirrord.trash.model import TRASH, Kept, parse_trash_rel, since_stamp

if TYPE_CHECKING:
    from mirrord.targets.rsync.target import RsyncTarget


# stdin: paths relative to .mirrord/trash ('<stamp>.<why>/<path>'), NUL-terminated; removes
# each and the directories it leaves empty (up to the stamp directory); prints what failed.
# Nothing is removed through a symlink: not at .mirrord or .mirrord/trash (cd would follow
# it), nor at a component of the kept path (a link planted in an entry led outside).
EXIT_DIR = 101   # restore: a directory stands at the path (remote.EXIT_ABSENT is 100)

PURGE_SCRIPT = rb"""{ [ -L ./.mirrord ] || [ -L ./.mirrord/trash ]; } && exit 0
cd ./.mirrord/trash 2>/dev/null || exit 0
xargs -0 -r sh -c '
for r; do
  d=./${r%/*}; """ + LINKED + rb"""
  [ -n "$bad" ] && continue
  rm -f -- "./$r" || printf "%s\0" "$r"
  rmdir -p --ignore-fail-on-non-empty -- "${r%/*}" 2>/dev/null
done' sh
"""


class RsyncTrash:
    """The trash of one RsyncTarget (its connection, root and description)."""

    def __init__(self, target: "RsyncTarget"):
        self.t = target

    # ------------------------------------------------------------ keep
    def keep_batch(self, requests: Sequence[tuple[str, str, str]]) -> list[int | Exception]:
        """Keep every (path, stamp, coming) request in one remote script; per request, the
        bytes kept (0: nothing, or already kept under that stamp) or the error (a bad request
        fails alone, before anything runs remotely)."""
        out: list[int | Exception] = [0] * len(requests)
        records = keep_records(requests, out)
        if not records:
            return out
        sent = [int(r.split(b" ", 1)[0]) for r in records]
        script, data = keep_script(records)
        try:
            proc = self.t.conn.run(self.t.in_root(script), data, timeout=LONG_TIMEOUT)
        except (RetryableError, PermanentError) as exc:
            for i in sent:
                out[i] = exc
            return out
        answers = _answers(proc.stdout)
        for i in sent:
            got = answers.get(i)
            what = f"{self.t.describe()}: cannot keep {requests[i][0]!r}"
            if got is None:   # the script was cut short: its stderr says why
                out[i] = classify_stderr(proc.stderr, what)
            elif got[0] == b"E":
                out[i] = classify_stderr(got[1], what)
            else:
                out[i] = int(got[1]) if got[0] == b"K" else 0
        return out

    # ------------------------------------------------------------ list / purge
    def list(self, prefix: str = "", since: float | None = None) -> Iterator[Kept]:
        """One remote `find` over the trash, streamed; only kept files at or below `prefix`,
        none stamped before `since` (seconds since the epoch; trash.model.since_stamp):
        find prunes every older '<stamp>.<why>' directory by its name (_since_names) and
        never descends into it, in the same one round trip."""
        prefix = prefix.strip("/")
        bound = since_stamp(since)
        body = b"[ -d ./.mirrord/trash ] || { printf 'E 0\\0'; exit 0; }\nfind ./.mirrord/trash "
        if bound is None:
            body += b"-mindepth 2 "
        else:   # a top-level name not matching is pruned; below the top, as without a bound
            names = b" -o ".join(b"-name " + q(n) for n in _since_names(bound))
            body += (b"-mindepth 1 ! -path './.mirrord/trash/*/*' ! \\( %s \\) -prune "
                     b"-o -path './.mirrord/trash/*/*' " % names)
        if prefix:   # a coarse pre-filter (find's * matches '/'); the exact test is below
            pat = b"./.mirrord/trash/*/" + _glob_escape(os.fsencode(check_relpath(prefix)))
            body += b"\\( -path %s -o -path %s \\) " % (q(pat), q(pat + b"/*"))
        body += b"-type f -printf '%s %T@ %m %P\\0'\nprintf 'E %s\\0' $?\n"
        ended_early = b"the trash listing ended early"
        for rec in listing.records(self.t, self.t.in_root(body), ended_early):
            size, ns, mode, rel = rec.split(b" ", 3)
            parsed = parse_trash_rel(os.fsdecode(rel))
            if parsed is None:
                continue   # not one of ours (a stray file in the trash)
            stamp, why, path = parsed
            if prefix and path != prefix and not path.startswith(prefix + "/"):
                continue
            if bound is not None and stamp < bound:
                continue   # not stamp-shaped where the patterns look (strptime is lenient)
            yield Kept(path, stamp, why, int(size), parse_find_ns(ns), f"{TRASH}/{os.fsdecode(rel)}",
                       int(mode, 8))

    def purge(self, kept: Sequence[Kept]) -> None:
        """Remove these kept files and the trash directories they leave empty, in one script."""
        rels = [_trash_rel(k) for k in kept]
        if not rels:
            return
        proc = self.t.conn.run(self.t.in_root(PURGE_SCRIPT), b"".join(r + b"\0" for r in rels),
                               timeout=LONG_TIMEOUT)
        failed = [r for r in proc.stdout.split(b"\0") if r]
        if failed or proc.returncode != 0:
            raise classify_stderr(proc.stderr, f"{self.t.describe()}: cannot purge "
                                  f"{len(failed) or len(rels)} kept file(s) from the trash")

    # ------------------------------------------------------------ restore / fetch
    def restore(self, kept: Kept, path: str) -> Entry:
        """cp -p the kept file to a temp name in .mirrord/rsync-tmp (same file system, swept
        at open()), set the kept mode and mtime, then mv it over `path`: atomic."""
        src, p = q(b"./%s/%s" % (TRASH.encode(), _trash_rel(kept))), self.t._rel(path)
        parent = path.rpartition("/")[0]
        body = NOLINK + (b"nolink %s && [ -f %s ] || exit %d\n" % (src, src, EXIT_ABSENT)) + MKDIRS
        if parent:
            up = self.t._rel(parent)   # mkdirs removes files in the way, like put()
            body += (b"mkdirs %s || exit 1\n"
                     b"nolink %s || { echo 'a symlink is on the way' >&2; exit 1; }\n" % (up, up))
        fix = b"touch -c -m -d @%s -- \"$t\"" % format_ns(kept.mtime_ns).encode()
        if kept.mode is not None:
            fix += b" && chmod %o \"$t\"" % kept.mode
        body += (b"mkdirs ./%s && t=$(mktemp ./%s/restore.XXXXXX) || exit 1\n" % (RSYNC_TMP, RSYNC_TMP)
                 # a directory at `path` is replaced only when empty: what is below it was not
                 # kept (undelete runs where keep_deleted may be off); `rm -rf` removed it
                 + b"if [ -d %s ] && [ ! -L %s ] && ! rmdir -- %s 2>/dev/null; then "
                 b"echo 'a directory stands there' >&2; rm -f -- \"$t\"; exit %d; fi\n"
                 % (p, p, p, EXIT_DIR)
                 + b"if cp -p -- %s \"$t\" && %s && mv -T -f -- \"$t\" %s; then\n"
                 % (src, fix, p)
                 + b"  exec find %s -maxdepth 0 -printf 'f %%T@ %%s %%m %%p'\nfi\n"
                 b"rm -f -- \"$t\"; exit 1" % p)
        proc = self.t.conn.run(self.t.in_root(body), timeout=LONG_TIMEOUT)
        if proc.returncode == EXIT_ABSENT:
            raise NotFound(f"{kept.key!r} is not in the trash on {self.t.describe()}")
        if proc.returncode == EXIT_DIR:
            raise PermanentError(f"{self.t.describe()}: cannot restore {kept.path!r} onto the "
                                 f"directory {path!r}")
        if proc.returncode != 0 or not proc.stdout:
            raise classify_stderr(proc.stderr, f"{self.t.describe()}: cannot restore {path!r}")
        return record_entry(path, proc.stdout)

    def fetch(self, kept: Kept, local: str) -> None:
        """`cat` the kept file on the host straight into `local` (created or truncated)."""
        src = q(b"./%s/%s" % (TRASH.encode(), _trash_rel(kept)))
        script = self.t.in_root(NOLINK + b"nolink %s && [ -f %s ] || exit %d\nexec cat -- %s"
                                % (src, src, EXIT_ABSENT, src))
        argv = self.t.conn.client_argv() + [self.t.opts.host, script]
        try:
            with self.t.conn.session(), open(local, "wb") as out:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.PIPE, timeout=LONG_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RetryableError(f"{self.t.describe()}: fetching {kept.key!r} timed out") from None
        except OSError as exc:   # the local file cannot be written
            raise classify_oserror(exc) from None
        if proc.returncode == EXIT_ABSENT:
            raise NotFound(f"{kept.key!r} is not in the trash on {self.t.describe()}")
        if proc.returncode != 0:
            raise classify_stderr(proc.stderr, f"{self.t.describe()}: cannot fetch {kept.key!r}")


def _trash_rel(kept: Kept) -> bytes:
    """kept.key relative to TRASH, refused unless it is '<stamp>.<why>/<safe path>'."""
    key = kept.key
    rel = key[len(TRASH) + 1:] if key.startswith(TRASH + "/") else ""
    if kept.version is not None or parse_trash_rel(rel) is None:
        raise PermanentError(f"{key!r} is not a kept file of this target")
    check_relpath(rel)   # no '', '.', '..' component, no NUL
    return os.fsencode(rel)


def _since_names(bound: str) -> list[bytes]:
    """find -name patterns matching exactly the names that sort at or after `bound` (a
    stamp: fixed width, digits where stamps differ) among names shaped like stamps: `bound`
    itself and anything after it, or `bound`'s first i characters then a greater digit
    (one pattern per digit position: 21 at most). Digits are listed, not ranged: a range
    in a bracket expression follows the locale's collation (POSIX 2.13.1)."""
    out = [bound.encode() + b"*"]
    for i, c in enumerate(bound):
        if c.isdigit() and c != "9":
            greater = "".join(str(d) for d in range(int(c) + 1, 10))
            out.append(f"{bound[:i]}[{greater}]*".encode())
    return out


def _glob_escape(value: bytes) -> bytes:
    """`value` matching itself only in a find -path pattern (fnmatch: backslash escapes)."""
    for c in (b"\\", b"*", b"?", b"["):
        value = value.replace(c, b"\\" + c)
    return value

