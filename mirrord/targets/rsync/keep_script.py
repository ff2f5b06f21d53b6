"""The keep script of the rsync target's trash: KEEP_BODY, the sh program that keeps what
a batch of changes is about to destroy on the mirror host, and the records it reads.

RsyncTrash.keep_batch runs it in one round trip (keep_script: records on the command
line, or on stdin through xargs -0 when there are many); inrun.wrapper runs it inside a
batch's rsync run, ahead of the receiver. keep_records writes each request as a record
(its path quoted, never code), _answers reads what the script printed. What keeping
means (a hard link, never a copy of a body; one `mv` for a directory) is in trash.py.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from mirrord.errors import PermanentError
from mirrord.targets.paths import check_relpath
from mirrord.targets.rsync.remote import q

COMINGS = ("file", "dir", "absent")
STAMP_SHAPE = re.compile(r"\d{8}T\d{6}\.\d{6}Z")   # mirrord.trash.model.stamp_of's _FMT
SHA256_SHAPE = re.compile(r"[0-9a-f]{64}")             # sha256sum's (and hexdigest's) hex

# Records b"INDEX COMING STAMP ./path" (STAMP "=": the previous record's; "+SUFFIX": the
# previous record's with its last 7 characters replaced; COMING "SIZE:SHA256" or, for
# an empty file, "0:": 'file', these bytes coming, see _coming), as sh arguments ("$@"): run by keep_script(), which
# passes a small batch on the command line and a large one NUL-terminated on stdin through
# xargs -0, or by inrun.wrapper() ahead of an rsync receiver. Answers, NUL-terminated:
#   b"INDEX K BYTES"   kept, BYTES = the bytes of the file(s) now in the trash      (on fd 3)
#   b"INDEX N"         nothing to keep (nothing there, a dir coming 'dir', a symlink on the
#                      way, a directory holding no file: coming 'file', it is removed here,
#                      as rsync without --force will not; the very bytes coming: a regular file of
#                      SIZE bytes and, when SIZE is not 0, the bytes whose sha256sum is
#                      SHA256, whatever its mtime) or already kept under this stamp (a retry),
#                      or an overwrite of a file with a second link at its own path in an
#                      '*.overwritten' entry of the trash (kept by an earlier try under
#                      another stamp: see LocalTrash._keep_at; test -ef, one builtin per
#                      entry (not POSIX; dash, bash and busybox sh have it), asked only of a file with more than one link: a link of the
#                      operator's, an rsnapshot --link-dest snapshot of the mirror, is no
#                      such proof and the file is kept, a review, helper-155), or a file to delete
#                      whose inode the trash already holds (find -samefile: kept under an
#                      earlier stamp, e.g. as 'overwritten' by a put that then did not
#                      replace it; it is removed, not linked a second time: one version was
#                      kept twice, tests/e2e/test_dir_flip_keeps_once.py)     (on fd 3)
#   b"INDEX E TEXT"    failed; TEXT is what the command printed on stderr           (on fd 1)
# The exit status is 0 only when no request failed (inrun.wrapper starts rsync on it).
# Cost (issue 17): a path with nothing at it (every new file) is answered by two builtin
# tests; mkdir and find of the trash (two execs) run only once something is kept; a file
# that stands there costs one find (%D %n %s), as it did before the version test, and
# one sha256sum of it more only when its size is the one coming (a re-send, a touch, or
# bytes rewritten in place with their length kept): size and mtime alone let a same-size
# rewrite with its mtime put back (ransomware keeping lengths, a script restoring
# timestamps, reconcile --checksum repairing one) overwrite the only good copy unkept,
# and the same bytes under a new mtime (coreutils touch seen live as a write) were kept
# as a duplicate (a trial, helper-161). sha256sum reads the file on stdin (no name on its
# command line or in its output); when it fails the file is kept.
KEEP_BODY = rb"""td= f=
no() { printf "%s N\0" "$i" >&3; }
err() { printf "%s E %s\0" "$i" "$1"; f=1; }
for r; do
  i=${r%% *}; r=${r#* }; c=${r%% *}; r=${r#* }; x=${r%% *}; p=${r#* }
  case $c in (*:*) v=${c%%:*}; h=${c#*:}; c=file ;; (*) v= h= ;; esac
  case $x in (=) ;; (+*) s=${s%???????}${x#+} ;; (*) s=$x ;; esac
  if [ ! -e "$p" ] && [ ! -L "$p" ]; then no; continue; fi
  n=.; bad=; o=$IFS; IFS=/; set -f
  for x in ${p#./}; do n="$n/$x"; [ -L "$n" ] && bad=1; done
  IFS=$o; set +f
  if [ -n "$bad" ]; then w=
  elif [ -f "$p" ]; then if [ "$c" = file ]; then w=overwritten; else w=deleted; fi
  elif [ -d "$p" ] && [ "$c" != dir ] && [ -n "$(find "$p" -type f -print -quit)" ]; then w=dir-removed
  elif [ -d "$p" ] && [ "$c" = file ]; then
    e=$(rm -rf -- "$p" 2>&1) || { err "$e"; continue; }; w=
  else w=; fi
  d=./.mirrord/trash/$s.$w/${p#./}
  if [ -z "$w" ] || [ -e "$d" ] || [ -L "$d" ]; then no; continue; fi
  x=$(find "$p" -maxdepth 0 -printf "%D %n %s" 2>&1) || { err "$x"; continue; }
  dv=${x%% *}; x=${x#* }; l=${x%% *}; z=${x#* }
  if [ "$w" = deleted ] && [ "$l" -gt 1 ] && [ -d ./.mirrord/trash ] &&
     [ -n "$(find ./.mirrord/trash -samefile "$p" -print -quit 2>/dev/null)" ]; then
    e=$(rm -f -- "$p" 2>&1) || { err "$e"; continue; }
    no; continue
  fi
  if [ "$w" = overwritten ]; then
    if [ "$l" -gt 1 ]; then
      k=; for e in ./.mirrord/trash/*.overwritten; do
        [ ! -L "$e/${p#./}" ] && [ "$e/${p#./}" -ef "$p" ] && { k=1; break; }
      done
      [ -n "$k" ] && { no; continue; }
    fi
    if [ "$v" = "$z" ]; then
      if [ -z "$h" ]; then [ "$z" = 0 ] && { no; continue; }
      else x=$(sha256sum < "$p" 2>/dev/null) && [ "${x%% *}" = "$h" ] && { no; continue; }; fi
    fi
  fi
  if [ -z "$td" ]; then
    if [ -L ./.mirrord ] || [ -L ./.mirrord/trash ]; then err "a symlink stands at .mirrord/trash"; continue; fi
    e=$(mkdir -p ./.mirrord/trash 2>&1) && td=$(find ./.mirrord/trash -maxdepth 0 -printf %D 2>&1) ||
      { err "$e$td"; td=; continue; }
  fi
  if [ "$dv" != "$td" ]; then
    err "not on the file system of .mirrord/trash: keeping it would copy"; continue
  fi
  n=.; bad=; o=$IFS; IFS=/; set -f
  for x in ${d#./}; do n="$n/$x"; [ -L "$n" ] && bad=1; done
  IFS=$o; set +f
  if [ -n "$bad" ]; then err "a symlink stands in the trash at ${d%/*}"; continue; fi
  e=$( { [ -d "${d%/*}" ] || mkdir -p -- "${d%/*}"; } 2>&1 && case $w in
      (overwritten) ln -- "$p" "$d" 2>&1 ;;
      (deleted) ln -- "$p" "$d" 2>&1 && rm -f -- "$p" 2>&1 ;;
      (*) mv -T -- "$p" "$d" 2>&1 ;;
    esac) || { err "$e"; continue; }
  if [ "$w" = dir-removed ]; then
    x=$(find "$d" -type f -printf "%s\n" | awk "{ t += \$1 } END { printf \"%.0f\", t }")
  else x=$z; fi
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


def keep_records(requests: Sequence[tuple], out: list, *, compact: bool = False) -> list[bytes]:
    """KEEP_BODY's record b"INDEX COMING STAMP ./path" for each (path, stamp, coming) or
    (path, stamp, coming, version) request, INDEX its place in `requests`; `version`, for
    coming 'file' only, is (size in bytes, mtime in ns, sha256 hex of the bytes: "" when
    not known) of what the put sends (None: not known): a regular file that already holds
    these bytes, whatever its mtime, is not kept (see _coming). A bad
    request gets its PermanentError in out[INDEX] instead (it fails alone, before anything
    runs remotely). `compact` (only for ONE sh run over all the records: xargs may split
    them over several): a stamp is written as what changed since the previous record's,
    b"=" or b"+" and its last 7 characters (the microseconds; a batch's event times share
    the second)."""
    records, last = [], b""
    for i, (path, stamp, coming, *version) in enumerate(requests):
        try:
            coming_word = _coming(coming, version[0] if version else None)
            word = _stamp(stamp)
            field = word
            if compact and word == last:
                field = b"="
            elif compact and len(word) == len(last) and word[:-7] == last[:-7]:
                field = b"+" + word[-7:]
            records.append(b"%d %s %s ./%s" % (i, coming_word, field,
                                              os.fsencode(check_relpath(path))))
            last = word
        except PermanentError as exc:
            out[i] = exc
    return records



def _coming(coming: str, version: tuple | None = None) -> bytes:
    """The record's COMING word: `coming`, or for 'file' with a `version` (size in bytes,
    mtime in ns, sha256 of the bytes as 64 lowercase hex digits) b"SIZE:SHA256". A
    regular file standing there of SIZE bytes whose sha256sum is SHA256 holds the very
    bytes the put sends, whatever its mtime: it is not kept, the put destroys nothing (a
    re-send after a lost ack or a reconcile re-queue kept a copy of the very version being
    sent; coreutils `touch` seen live as a write kept the same bytes under the old mtime,
    a trial, helper-161; S3 and local skip it too: s3/conditional._holds,
    LocalTrash._keep_in_put). The mtime is validated, not written: size and mtime alone
    are not the same bytes (a file rewritten in place with its length and its mtime put
    back was overwritten unkept, helper-155), and the same bytes need no mtime. A version
    without its sha256 ("" or left out: not known) is plain b"file", kept, unless its
    size is 0 (b"0:": no bytes to differ). PermanentError for a bad coming or version."""
    if coming not in COMINGS:
        raise PermanentError(f"keep: coming must be one of {COMINGS}, not {coming!r}")
    if version is None or coming != "file":
        return coming.encode("ascii")
    if not (isinstance(version, tuple) and len(version) in (2, 3)
            and all(type(v) is int for v in version[:2]) and version[0] >= 0):
        raise PermanentError(f"keep: version must be (size, mtime_ns[, sha256]), not {version!r}")
    size, _, sha = (*version, "")[:3]
    if not (isinstance(sha, str) and (sha == "" or SHA256_SHAPE.fullmatch(sha))):
        raise PermanentError(f"keep: a version's sha256 must be 64 lowercase hex digits, not {sha!r}")
    if size and not sha:   # the same bytes cannot be told: kept
        return b"file"
    return b"%d:%s" % (size, sha.encode("ascii") if size else b"")


def _stamp(stamp: str) -> bytes:
    """A stamp made by mirrord.trash.model.stamp_of (no space, no '/': safe in a record).
    Its shape is checked (STAMP_SHAPE), not parsed: each event time makes a stamp of its
    own, and strptime costs ~12 us a call."""
    if not isinstance(stamp, str) or not STAMP_SHAPE.fullmatch(stamp):
        raise PermanentError(f"keep: {stamp!r} is not a trash stamp")
    return stamp.encode("ascii")



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
