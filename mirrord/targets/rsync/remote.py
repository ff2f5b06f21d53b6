"""The shell the rsync target runs on the mirror host, and the parsing of what it prints.

Every script runs cd'ed into the target root (RsyncTarget.in_root) under a POSIX
sh with GNU find/xargs/touch (Debian). Paths never reach the shell as code: they
arrive on stdin, NUL-separated through xargs -0, or quoted by q(). Listing and
stat records are find(1) -printf lines "TYPE MTIME SIZE MODE ./path" (%T@ with
nanoseconds, %s bytes, %m octal permission bits).

Metadata-only updates (a chmod or touch at the source must not re-send the file):
META_SCRIPT takes one NUL-terminated record per file on stdin,

    b"INDEX MODE SECONDS.NANOSECONDS ./path"      MODE octal, or "-" to leave it

and answers one NUL-terminated record per file:

    b"INDEX f MTIME SIZE MODE"   done; the file as find(1) now reports it (%T@ %s %m)
    b"INDEX A"                   no regular file there (or a symlink on the way): absent
    b"INDEX E"                   chmod/touch failed (the reason is on stderr)

Exactness: `touch -m -d @SECONDS.NANOSECONDS` (GNU touch, coreutils "Date input
formats": "@" seconds with a fraction) sets the mtime to the nanosecond, as
utimensat does; chmod takes the octal mode as is, so no umask applies. Safety:
neither chmod (which follows symlinks) nor touch runs when any component of the
path is a symlink: a symlink planted on the mirror cannot make us change
anything outside the root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mirrord.errors import PermanentError, RetryableError
from mirrord.targets.model import Entry
from mirrord.targets.mtime import format_ns, ns_to_float, parse_find_ns

RSYNC_TMP = b".mirrord/rsync-tmp"   # rsync's --temp-dir and write_meta's temp files, swept at open()
RETRY_EXIT = {5, 10, 12, 14, 20, 21, 22, 30, 35, 255}   # rsync: connection, protocol start, timeout, signals
EXIT_ABSENT = 100           # our remote scripts: the path is not there
EXIT_NO_ROOT = 97           # our remote scripts: cannot cd into the target root
EXIT_NOT_DIR = 96           # readonly_script: the target root is there but no directory
LONG_TIMEOUT = 3600.0       # seconds; dead links are caught sooner by ServerAlive: this only
                            # stops a command (a big tree removal, a batch) hanging on the host

DISK_FULL = (b"No space left on device", b"Disk quota exceeded")
PERMANENT = (b"Permission denied", b"File name too long", b"Operation not permitted",
             b"Host key verification failed")


# Listing records: "TYPE MTIME SIZE MODE ./path" (MODE octal permission bits, find's %m;
# directories as "./path/" so they sort before their contents); sorted on the remote by
# the path bytes, i.e. in entry_key order.
PRINTF = (rb"\( -type d -printf 'd %T@ 0 %m %p/\0' \) -o \( -type f -printf 'f %T@ %s %m %p\0' \)")
# a listing's: anything else too (symlink, FIFO, socket, device; %y its type letter,
# find(1)), so a reconcile removes what was planted on the mirror host (Entry.other)
PRINTF_LIST = PRINTF + rb" -o -printf 'o%y %T@ 0 %m %p\0'"
OTHER_KINDS = {b"ol": "symlink", b"op": "fifo", b"os": "socket", b"oc": "character device",
               b"ob": "block device"}

# mkdirs ./a/b: make every component a directory, one at a time, replacing a symlink or a
# file standing in the way (never `mkdir -p`, which follows a symlinked component out of
# the root: a symlink planted on the mirror host, ln -> /etc, made `mkdirs ./ln/x` create
# /etc/x and the move that followed write there). mkdir's message is printed only when the
# directory is not there after all (a racing mkdir is no failure): without it the error
# said "failed", no cause.
MKDIRS = rb"""mkdirs() {
  set -f; o=$IFS; IFS=/; c=.
  for n in ${1#./}; do
    c="$c/$n"
    if [ -L "$c" ] || { [ -e "$c" ] && [ ! -d "$c" ]; }; then rm -f -- "$c"; fi
    [ -d "$c" ] || e=$(mkdir -- "$c" 2>&1) || [ -d "$c" ] || {
      printf '%s\n' "$e" >&2; IFS=$o; set +f; return 1; }
  done
  IFS=$o; set +f
}
"""

# nolink ./a/b: fails when any component, the last included, is a symlink. Every command
# that reads or removes by path asks it first (of the path, or of its parent for a removal
# of a symlink itself): sh, cat, find, rm and mv all follow a symlinked parent, so one
# planted on the mirror host (ln -> /etc) made delete('ln/passwd') remove /etc/passwd.
NOLINK = rb"""nolink() {
  c=.; o=$IFS; IFS=/; set -f
  for n in ${1#./}; do c="$c/$n"; if [ -L "$c" ]; then IFS=$o; set +f; return 1; fi; done
  IFS=$o; set +f
}
"""

# The same walk inside xargs scripts (here, trash.PURGE_SCRIPT; functions do not cross `sh -c`): sets
# bad=1 when a component of $d is a symlink.
LINKED = rb"""bad=; c=.; o=$IFS; IFS=/; set -f
  for n in ${d#./}; do c="$c/$n"; [ -L "$c" ] && bad=1; done
  IFS=$o; set +f"""

# Records on stdin: b"T./path" (remove the tree) or b"F./path" (remove a file or an empty
# directory; a directory that is not empty is left with no error, Target.delete's contract:
# the `|| :` keeps rmdir's status from becoming the script's, which failed every delete of
# the batch when such a directory came last). Prints the records that failed,
# NUL-terminated. Below a symlinked parent nothing of the mirror's can be: nothing is
# removed there, and that is no failure.
DELETE = rb"""xargs -0 -r sh -c '
for r; do
  p=${r#?}; d=${p%/*}
  """ + LINKED + rb"""
  [ -n "$bad" ] && continue
  case $r in
  T*) rm -rf -- "$p" || printf "%s\0" "$r" ;;
  *) if [ -d "$p" ] && [ ! -L "$p" ]; then rmdir -- "$p" 2>/dev/null || :
     else rm -f -- "$p" || printf "%s\0" "$r"; fi ;;
  esac
done' sh
"""

# Paths on stdin (NUL-separated); prints a listing record for each that exists and has no
# symlink on the way (nor is one).
STAT_MANY = rb"""xargs -0 -r sh -c 'for d; do
  """ + LINKED + rb"""
  [ -n "$bad" ] || find "$d" -maxdepth 0 \( -type d -printf "d %T@ 0 %m %p\0" \) \
    -o \( -type f -printf "f %T@ %s %m %p\0" \) 2>/dev/null
done; exit 0' sh
"""

# Paths on stdin (NUL-separated), before a put's rsync run is tried again: a symlink or a
# file standing where a parent directory goes is removed, as the local target replaces it
# (rsync's receiver will not follow the one, "Too many levels of symbolic links", and a
# staged run, --no-implied-dirs, cannot make a directory over the other: the put failed
# on every retry; with keep_deleted the run's keep wrapper kept it first, inrun.py).
# Prints each path it removed, NUL-terminated.
UNLINK_PARENTS = rb"""xargs -0 -r sh -c 'for p; do
  c=.; o=$IFS; IFS=/; set -f
  for n in ${p#./}; do
    c="$c/$n"; [ "$c" = "$p" ] && break
    if [ -L "$c" ] || { [ -e "$c" ] && [ ! -d "$c" ]; }; then
      rm -f -- "$c" && printf "%s\0" "$c"
    fi
  done
  IFS=$o; set +f
done; exit 0' sh
"""


ROOT_EMPTY = b"MIRRORD-ROOT-EMPTY"   # readonly_script's line for a root that holds nothing
# True (status 0), run cd'ed into the root, when it holds nothing: holds_nothing's rule
# (mirrord.targets.root_check): `lost+found` and a `.mirrord/` without a heartbeat do not
# count; a root that cannot be listed is not called empty. No single quote: it also runs
# inside `sh -c '...'` (root_guard.py)
HOLDS_NOTHING = (b"e=$(find . -mindepth 1 -maxdepth 1 ! -name .mirrord ! -name lost+found "
                 b"-print -quit 2>/dev/null) && [ -z \"$e\" ] && ! [ -e .mirrord/heartbeat.json ] "
                 b"&& ! [ -L .mirrord/heartbeat.json ]")
ROOT_UNMARKED = b"MIRRORD-ROOT-UNMARKED"   # ... for one holding entries but no .mirrord/


def readonly_script(root: bytes, rsync_path: bytes) -> bytes:
    """open(readonly=True): exit EXIT_ABSENT when the root does not exist, EXIT_NOT_DIR when
    it is no directory, 1 when it cannot be entered (cd fails), else print ROOT_EMPTY on a line of its own when the root holds
    nothing at all (mirrord.targets.root_check.holds_nothing's rule: `lost+found` and a
    `.mirrord/` without a heartbeat do not count; a root that cannot be listed is not
    called empty), or ROOT_UNMARKED when it holds entries but no `.mirrord/` directory
    (root_check.unmarked), then rsync's version line (nothing when there is no rsync). Makes and
    removes nothing on the host."""
    return (b"[ -e %s ] || exit %d\n[ -d %s ] || exit %d\ncd -- %s || exit 1\n"
            % (q(root), EXIT_ABSENT, q(root), EXIT_NOT_DIR, q(root))
            + b"if %s; then echo %s\nelif ! [ -d .mirrord ] || [ -L .mirrord ]; then echo %s; fi\n"
            % (HOLDS_NOTHING, ROOT_EMPTY, ROOT_UNMARKED)
            + b"%s --version 2>/dev/null | head -n 1; exit 0" % rsync_path)


def q(value: bytes) -> bytes:
    """Quote bytes as one word for a POSIX shell."""
    if value and re.fullmatch(rb"[A-Za-z0-9_@%+=:,./-]+", value):
        return value
    return b"'" + value.replace(b"'", b"'\"'\"'") + b"'"


def tail(text: bytes, limit: int = 400) -> str:
    """The last `limit` bytes of a command's output, as text for a message."""
    text = text.strip()
    if len(text) > limit:
        text = b"..." + text[-limit:]
    return text.decode("utf-8", "replace")


def parse_record(rec: bytes) -> tuple[bytes, bytes, int, int, int]:
    """b'f MTIME SIZE MODE ./path' -> (kind, path without './' or trailing '/', size,
    mtime_ns, mode)."""
    kind, mtime, size, mode, path = rec.split(b" ", 4)
    if path.startswith(b"./"):
        path = path[2:]
    if kind == b"d" and path.endswith(b"/"):
        path = path[:-1]
    return kind, path, int(size), parse_find_ns(mtime), int(mode, 8)


def other_of(kind: bytes) -> str | None:
    """Entry.other for a listing record's kind: None for b'f' and b'd'."""
    return None if kind in (b"f", b"d") else OTHER_KINDS.get(kind, "special file")


def record_entry(path: str, rec: bytes) -> Entry:
    """The Entry for one listing/stat record, named `path`."""
    kind, _, size, ns, mode = parse_record(rec)
    return Entry(path, size, ns_to_float(ns), is_dir=kind == b"d", mtime_ns=ns, mode=mode)


def classify_stderr(stderr: bytes, what: str) -> Exception:
    """What a failed remote command or rsync run is: a full disk is Retryable, a refusal
    that retrying cannot fix (PERMANENT) Permanent, anything else (network) Retryable.
    The message is `what` and the end of stderr (ssh/rsync never print credentials), its
    staging file names replaced (unstaged)."""
    stderr = unstaged(stderr)
    if any(m in stderr for m in DISK_FULL):
        return RetryableError(f"{what}: disk full: {tail(stderr)}")
    if any(m in stderr for m in PERMANENT):
        return PermanentError(f"{what}: {tail(stderr)}")
    return RetryableError(f"{what}: {tail(stderr) or 'failed'}")


# A staging file of rsync's --temp-dir (or write_meta's) as rsync and coreutils quote it:
# "/root/.mirrord/rsync-tmp/.a.XyZ12" (rsync 3.2: "a.XyZ12"), a new random name per file
STAGED = re.compile(rb'"[^"\n]*' + re.escape(RSYNC_TMP) + rb'/[^"\n]*"')


def unstaged(text: bytes) -> bytes:
    """`text` with each quoted staging file name replaced by one placeholder: a random name
    made the error of each file distinct, so the pipeline's one log line per distinct error
    and reconcile's one line per cause became one line per file."""
    return STAGED.sub(b'"' + RSYNC_TMP + b'/..."', text)


def item_stderr(stderr: bytes, path: bytes) -> bytes:
    """The lines of `stderr` (of one command or rsync run for many paths) that name `path`
    (bytes, as the command was given it: rsync quotes it "d/x", coreutils './d/x'), or all
    of `stderr` when none does (a cause common to the run: the link dropped). Each item's
    error then holds its own lines, not the end of every other item's."""
    def names(line: bytes) -> bool:
        return any(q + path + q in line or b"/" + path + q in line for q in (b'"', b"'"))
    mine = [line for line in stderr.splitlines() if names(line)]
    return b"\n".join(mine) if mine else stderr


META_SCRIPT = rb"""xargs -0 -r sh -c '
for r; do
  i=${r%% *}; r=${r#* }; m=${r%% *}; r=${r#* }; t=${r%% *}; p=${r#* }
  c=.; bad=; o=$IFS; IFS=/; set -f
  for n in ${p#./}; do c="$c/$n"; [ -L "$c" ] && bad=1; done
  IFS=$o; set +f
  if [ -n "$bad" ] || [ ! -f "$p" ]; then printf "%s A\0" "$i"; continue; fi
  if { [ "$m" = - ] || chmod -- "$m" "$p"; } && touch -c -m -d "@$t" -- "$p" &&
     find "$p" -maxdepth 0 -printf "$i f %T@ %s %m\0"; then :; else printf "%s E\0" "$i"; fi
done' sh
"""


@dataclass(frozen=True)
class MetaDone:
    """A record the script applied: the file's size (bytes), mtime (ns) and mode now."""

    size: int
    mtime_ns: int
    mode: int


def meta_record(index: int, path: bytes, mode: int | None, mtime_ns: int) -> bytes:
    """One stdin record for `path` (relative to the root, bytes, no leading './')."""
    m = b"-" if mode is None else b"%o" % mode
    return b"%d %s %s ./%s" % (index, m, format_ns(mtime_ns).encode("ascii"), path)


def parse_answers(stdout: bytes) -> dict[int, MetaDone | str]:
    """INDEX -> MetaDone, or "A" (absent) / "E" (failed). Indexes the script did not answer
    for (it was cut short) are missing: the caller treats them as failed."""
    out: dict[int, MetaDone | str] = {}
    for rec in filter(None, stdout.split(b"\0")):
        fields = rec.split(b" ")
        try:
            index = int(fields[0])
            if fields[1] == b"f" and len(fields) == 5:
                out[index] = MetaDone(int(fields[3]), parse_find_ns(fields[2]), int(fields[4], 8))
            elif fields[1] in (b"A", b"E") and len(fields) == 2:
                out[index] = fields[1].decode()
        except (IndexError, ValueError):
            continue   # not one of ours (a stray line): the index stays unanswered
    return out
