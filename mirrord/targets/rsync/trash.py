"""keep_deleted on the rsync target: the trash under `<root>/.mirrord/trash` on the mirror host.

RsyncTrash does, for one RsyncTarget, what mirrord.targets.base.Target.keep,
keep_many and trash_* promise, each as ONE remote command over the target's
ssh connection (a whole keep batch in one round trip, like remote.META_SCRIPT);
a batch's marked puts run KEEP_BODY inside their rsync run instead (inrun.py).
Paths never reach the shell as code: keep records are quoted words or arrive on
stdin through xargs -0, single paths are quoted by remote.q().

Keeping never copies a body: an overwritten file gets a second hard link in
the trash (`ln`; the rsync that follows renames its temp file over the path, so
the kept inode keeps the old bytes); a deleted file is linked then unlinked; a
removed directory is ONE `mv` of the directory. `ln` fails with EXDEV instead
of copying; before a directory `mv` (GNU mv copies on EXDEV) the device numbers
(find %D) of the path and of the trash are compared. A place already holding
a kept entry is never replaced (`ln` refuses an existing name; the script
checks first), so a retry with the same stamp keeps nothing twice. A symlink
anywhere on the path means nothing is there (list() never shows one either),
so a planted link cannot make us move anything outside the root.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import TYPE_CHECKING, Iterator, Sequence

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.base import Entry, check_relpath, classify_oserror, format_ns, parse_ns
from mirrord.targets.rsync.remote import (EXIT_ABSENT, LONG_TIMEOUT, MKDIRS, NOLINK, RSYNC_TMP,
                                          classify_stderr, q, record_entry)
from mirrord.trash.model import TRASH, Kept, parse_trash_rel

if TYPE_CHECKING:
    from mirrord.targets.rsync.target import RsyncTarget

COMINGS = ("file", "dir", "absent")
STAMP_SHAPE = re.compile(r"\d{8}T\d{6}\.\d{6}Z")   # mirrord.trash.model.stamp_of's _FMT

# Records b"INDEX COMING STAMP ./path" (STAMP "=": the previous record's; "+SUFFIX": the
# previous record's with its last 7 characters replaced), as sh arguments ("$@"): run by
# keep_script(), which
# passes a small batch on the command line and a large one NUL-terminated on stdin through
# xargs -0, or by inrun.wrapper() ahead of an rsync receiver. Answers, NUL-terminated:
#   b"INDEX K BYTES"   kept, BYTES = the bytes of the file(s) now in the trash      (on fd 3)
#   b"INDEX N"         nothing to keep (nothing there, a dir coming 'dir', a symlink on the
#                      way, an empty directory) or already kept under this stamp (a retry),
#                      or an overwrite of a file with a second link (kept by an earlier try
#                      under another stamp: see LocalTrash._keep_at)                (on fd 3)
#   b"INDEX E TEXT"    failed; TEXT is what the command printed on stderr           (on fd 1)
# The exit status is 0 only when no request failed (inrun.wrapper starts rsync on it).
# Cost (issue 17): a path with nothing at it (every new file) is answered by two builtin
# tests; mkdir and find of the trash (two execs) run only once something is kept.
KEEP_BODY = rb"""td= f=
no() { printf "%s N\0" "$i" >&3; }
err() { printf "%s E %s\0" "$i" "$1"; f=1; }
for r; do
  i=${r%% *}; r=${r#* }; c=${r%% *}; r=${r#* }; x=${r%% *}; p=${r#* }
  case $x in (=) ;; (+*) s=${s%???????}${x#+} ;; (*) s=$x ;; esac
  if [ ! -e "$p" ] && [ ! -L "$p" ]; then no; continue; fi
  n=.; bad=; o=$IFS; IFS=/; set -f
  for x in ${p#./}; do n="$n/$x"; [ -L "$n" ] && bad=1; done
  IFS=$o; set +f
  if [ -n "$bad" ]; then w=
  elif [ -f "$p" ]; then if [ "$c" = file ]; then w=overwritten; else w=deleted; fi
  elif [ -d "$p" ] && [ "$c" != dir ] && [ -n "$(find "$p" -type f -print -quit)" ]; then w=dir-removed
  else w=; fi
  d=./.mirrord/trash/$s.$w/${p#./}
  if [ -z "$w" ] || [ -e "$d" ] || [ -L "$d" ]; then no; continue; fi
  if [ -z "$td" ]; then
    e=$(mkdir -p ./.mirrord/trash 2>&1) && td=$(find ./.mirrord/trash -maxdepth 0 -printf %D 2>&1) ||
      { err "$e$td"; td=; continue; }
  fi
  x=$(find "$p" -maxdepth 0 -printf "%D %n %s")
  if [ "${x%% *}" != "$td" ]; then
    err "not on the file system of .mirrord/trash: keeping it would copy"; continue
  fi
  x=${x#* }; l=${x%% *}
  if [ "$w" = overwritten ] && [ "$l" -gt 1 ]; then no; continue; fi
  e=$( { [ -d "${d%/*}" ] || mkdir -p -- "${d%/*}"; } 2>&1 && case $w in
      (overwritten) ln -- "$p" "$d" 2>&1 ;;
      (deleted) ln -- "$p" "$d" 2>&1 && rm -f -- "$p" 2>&1 ;;
      (*) mv -T -- "$p" "$d" 2>&1 ;;
    esac) || { err "$e"; continue; }
  if [ "$w" = dir-removed ]; then
    x=$(find "$d" -type f -printf "%s\n" | awk "{ t += \$1 } END { printf \"%.0f\", t }")
  else x=${x#* }; fi
  printf "%s K %s\0" "$i" "$x" >&3
done
[ -z "$f" ]"""
assert b"'" not in KEEP_BODY   # it runs as sh -c '...'
# records up to this many bytes (quoted) ride on the command line (one exec on the host, not
# xargs and sh); far below Linux's 128 KiB cap on one argument (MAX_ARG_STRLEN), which the
# whole remote command is to the login shell's -c
ARGS_LIMIT = 32 << 10


def keep_script(records: Sequence[bytes]) -> tuple[bytes, bytes]:
    """(script, stdin) running KEEP_BODY over `records` (each b"INDEX COMING STAMP ./path",
    no NUL): on the command line when they are small, else on stdin through xargs -0."""
    words = [q(r) for r in records]
    if sum(len(w) + 1 for w in words) <= ARGS_LIMIT:
        return b"exec sh -c '" + KEEP_BODY + b"' sh " + b" ".join(words) + b" 3>&1\n", b""
    return (b"xargs -0 -r sh -c '" + KEEP_BODY + b"' sh 3>&1\n",
            b"".join(r + b"\0" for r in records))


# stdin: paths relative to .mirrord/trash ('<stamp>.<why>/<path>'), NUL-terminated; removes
# each and the directories it leaves empty (up to the stamp directory); prints what failed.
PURGE_SCRIPT = rb"""cd ./.mirrord/trash 2>/dev/null || exit 0
xargs -0 -r sh -c '
for r; do
  rm -f -- "./$r" || printf "%s\0" "$r"
  rmdir -p --ignore-fail-on-non-empty -- "${r%/*}" 2>/dev/null
done' sh
"""


def keep_records(requests: Sequence[tuple[str, str, str]], out: list, *,
                 compact: bool = False) -> list[bytes]:
    """KEEP_BODY's record b"INDEX COMING STAMP ./path" for each (path, stamp, coming)
    request, INDEX its place in `requests`; a bad request gets its PermanentError in
    out[INDEX] instead (it fails alone, before anything runs remotely). `compact` (only for
    ONE sh run over all the records: xargs may split them over several): a stamp is
    written as what changed since the previous record's, b"=" or b"+" and its last 7
    characters (the microseconds; a batch's event times share the second)."""
    records, last = [], b""
    for i, (path, stamp, coming) in enumerate(requests):
        try:
            word = _stamp(stamp)
            field = word
            if compact and word == last:
                field = b"="
            elif compact and len(word) == len(last) and word[:-7] == last[:-7]:
                field = b"+" + word[-7:]
            records.append(b"%d %s %s ./%s" % (i, _coming(coming), field,
                                              os.fsencode(check_relpath(path))))
            last = word
        except PermanentError as exc:
            out[i] = exc
    return records


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
    def list(self, prefix: str = "") -> Iterator[Kept]:
        """One remote `find` over the trash, streamed; only kept files at or below `prefix`."""
        prefix = prefix.strip("/")
        body = b"[ -d ./.mirrord/trash ] || { printf 'E 0\\0'; exit 0; }\nfind ./.mirrord/trash -mindepth 2 "
        if prefix:   # a coarse pre-filter (find's * matches '/'); the exact test is below
            pat = b"./.mirrord/trash/*/" + _glob_escape(os.fsencode(check_relpath(prefix)))
            body += b"\\( -path %s -o -path %s \\) " % (q(pat), q(pat + b"/*"))
        body += b"-type f -printf '%s %T@ %m %P\\0'\nprintf 'E %s\\0' $?\n"
        for rec in self._stream(self.t.in_root(body)):
            size, ns, mode, rel = rec.split(b" ", 3)
            parsed = parse_trash_rel(os.fsdecode(rel))
            if parsed is None:
                continue   # not one of ours (a stray file in the trash)
            stamp, why, path = parsed
            if prefix and path != prefix and not path.startswith(prefix + "/"):
                continue
            yield Kept(path, stamp, why, int(size), parse_ns(ns), f"{TRASH}/{os.fsdecode(rel)}",
                       int(mode, 8))

    def _stream(self, script: bytes) -> Iterator[bytes]:
        """The NUL-terminated records `script` prints, up to its b'E STATUS' record."""
        argv = self.t.conn.client_argv() + [self.t.opts.host, script]
        with self.t.conn.session(), tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err, bufsize=0)
            try:
                rest = b""
                while chunk := proc.stdout.read(1 << 16):
                    *records, rest = (rest + chunk).split(b"\0")
                    for rec in records:
                        if rec[:2] == b"E ":
                            if rec != b"E 0":
                                self.t._list_failed(proc, err, rec)
                            return
                        yield rec
                self.t._list_failed(proc, err, b"the trash listing ended early")
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdout.close()
                proc.wait()

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
        body = b"[ -f %s ] && [ ! -L %s ] || exit %d\n" % (src, src, EXIT_ABSENT) + MKDIRS + NOLINK
        if parent:
            up = self.t._rel(parent)   # mkdirs removes files in the way, like put()
            body += (b"mkdirs %s || exit 1\n"
                     b"nolink %s || { echo 'a symlink is on the way' >&2; exit 1; }\n" % (up, up))
        fix = b"touch -c -m -d @%s -- \"$t\"" % format_ns(kept.mtime_ns).encode()
        if kept.mode is not None:
            fix += b" && chmod %o \"$t\"" % kept.mode
        body += (b"mkdir -p %s && t=$(mktemp %s/restore.XXXXXX) || exit 1\n" % (RSYNC_TMP, RSYNC_TMP)
                 + b"if cp -p -- %s \"$t\" && %s && { [ ! -d %s ] || [ -L %s ] || rm -rf -- %s; }"
                 b" && mv -T -f -- \"$t\" %s; then\n" % (src, fix, p, p, p, p)
                 + b"  exec find %s -maxdepth 0 -printf 'f %%T@ %%s %%m %%p'\nfi\n"
                 b"rm -f -- \"$t\"; exit 1" % p)
        proc = self.t.conn.run(self.t.in_root(body), timeout=LONG_TIMEOUT)
        if proc.returncode == EXIT_ABSENT:
            raise NotFound(f"{kept.key!r} is not in the trash on {self.t.describe()}")
        if proc.returncode != 0 or not proc.stdout:
            raise classify_stderr(proc.stderr, f"{self.t.describe()}: cannot restore {path!r}")
        return record_entry(path, proc.stdout)

    def fetch(self, kept: Kept, local: str) -> None:
        """`cat` the kept file on the host straight into `local` (created or truncated)."""
        src = q(b"./%s/%s" % (TRASH.encode(), _trash_rel(kept)))
        script = self.t.in_root(b"[ -f %s ] && [ ! -L %s ] || exit %d\nexec cat -- %s"
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


def _coming(coming: str) -> bytes:
    if coming not in COMINGS:
        raise PermanentError(f"keep: coming must be one of {COMINGS}, not {coming!r}")
    return coming.encode("ascii")


def _stamp(stamp: str) -> bytes:
    """A stamp made by mirrord.trash.model.stamp_of (no space, no '/': safe in a record).
    Its shape is checked (STAMP_SHAPE), not parsed: each event time makes a stamp of its
    own, and strptime costs ~12 us a call."""
    if not isinstance(stamp, str) or not STAMP_SHAPE.fullmatch(stamp):
        raise PermanentError(f"keep: {stamp!r} is not a trash stamp")
    return stamp.encode("ascii")


def _trash_rel(kept: Kept) -> bytes:
    """kept.key relative to TRASH, refused unless it is '<stamp>.<why>/<safe path>'."""
    key = kept.key
    rel = key[len(TRASH) + 1:] if key.startswith(TRASH + "/") else ""
    if kept.version is not None or parse_trash_rel(rel) is None:
        raise PermanentError(f"{key!r} is not a kept file of this target")
    check_relpath(rel)   # no '', '.', '..' component, no NUL
    return os.fsencode(rel)


def _glob_escape(value: bytes) -> bytes:
    """`value` matching itself only in a find -path pattern (fnmatch: backslash escapes)."""
    for c in (b"\\", b"*", b"?", b"["):
        value = value.replace(c, b"\\" + c)
    return value


def _answers(stdout: bytes) -> dict[int, tuple[bytes, bytes]]:
    """INDEX -> (b'K', bytes) / (b'N', b'') / (b'E', stderr text) from KEEP_BODY's output."""
    out: dict[int, tuple[bytes, bytes]] = {}
    for rec in filter(None, stdout.split(b"\0")):
        fields = rec.split(b" ", 2)
        try:
            index = int(fields[0])
            if fields[1] == b"K" and len(fields) == 3 and fields[2].isdigit():
                out[index] = (b"K", fields[2])
            elif fields[1] == b"N" and len(fields) == 2:
                out[index] = (b"N", b"")
            elif fields[1] == b"E":
                out[index] = (b"E", fields[2] if len(fields) == 3 else b"")
        except (IndexError, ValueError):
            continue   # a stray line: the index stays unanswered
    return out
