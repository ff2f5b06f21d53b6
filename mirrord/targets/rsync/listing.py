"""Streamed listings of the mirror host: one remote `find` whose NUL-terminated records
are read as they arrive over one ssh session, never held whole in memory.

records() is the stream both listings share: the target's own tree (list_entries:
`find | sort` into the engine's byte order, the root's `.mirrord/` pruned) and the
trash's (mirrord.targets.rsync.trash). A script ends its output with a b'E STATUS'
record, and a b'F STATUS' record carries the status of a pipeline's first stage (the
`find` before `sort`, whose failure the pipeline's own status hides); a status other
than 0, or output that ends before the b'E' record (the connection dropped), raises.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from mirrord.errors import RetryableError
from mirrord.targets.model import Entry
from mirrord.targets.mtime import ns_to_float
from mirrord.targets.rsync.remote import (
    EXIT_NO_ROOT,
    NOLINK,
    PRINTF_LIST,
    classify_stderr,
    other_of,
    parse_record,
    tail,
)

if TYPE_CHECKING:
    from mirrord.targets.rsync.target import RsyncTarget


def list_entries(t: RsyncTarget, prefix: str = "") -> Iterator[Entry]:
    """Target.list on the host: every entry at or below `prefix` (all but the root's
    `.mirrord/`), sorted by path bytes (LC_ALL=C sort on the path field); nothing
    below a symlink. Raises as records() does."""
    prefix = prefix.strip("/")
    if prefix:
        start = t._rel(prefix)   # nothing of ours below a symlink (nolink): none listed
        body = (NOLINK + b"nolink %s && [ -e %s ] || { printf 'F 0\\0E 0\\0'; exit 0; }\n"
                % (start, start)
                + b"exec 3>&1\n{ find %s %s; printf 'F %%s\\0' $? >&3; }" % (start, PRINTF_LIST))
    else:
        body = (b"exec 3>&1\n{ find . -mindepth 1 \\( -path ./.mirrord -prune \\) -o %s; "
                b"printf 'F %%s\\0' $? >&3; }" % PRINTF_LIST)
    body += b" | LC_ALL=C sort -z -t ' ' -k 5\nprintf 'E %s\\0' $?\n"
    for rec in records(t, t.in_root(body), b"the listing ended early"):
        kind, path, size, ns, mode = parse_record(rec)
        yield Entry(os.fsdecode(path), size, ns_to_float(ns), is_dir=kind == b"d",
                    mtime_ns=ns, mode=mode, other=other_of(kind))


def records(t: RsyncTarget, script: bytes, early: bytes) -> Iterator[bytes]:
    """The NUL-terminated records `script` prints on the host, up to its b'E STATUS'
    record; status records are not yielded. RetryableError when the target root is not
    there (EXIT_NO_ROOT), else as classify_stderr for a status other than 0 or for
    output that ends before b'E' (`early` says so when ssh printed nothing)."""
    argv = t.conn.client_argv() + [t.opts.host, script]
    with t.conn.session(), tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, bufsize=0)
        try:
            rest = b""
            while chunk := proc.stdout.read(1 << 16):
                *recs, rest = (rest + chunk).split(b"\0")
                for rec in recs:
                    if rec[:2] in (b"F ", b"E "):
                        if rec[2:] != b"0":
                            failed(t, proc, err, rec)
                        if rec[:1] == b"E":
                            return
                        continue
                    yield rec
            failed(t, proc, err, early)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()


def failed(t: RsyncTarget, proc: subprocess.Popen, err: IO[bytes], why: bytes) -> None:
    """Raise for a listing that failed: the ssh process ended (killed if need be), its
    stderr from `err`, `why` the status record or what ended it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    err.seek(0)
    stderr = err.read()
    if proc.returncode == EXIT_NO_ROOT:
        raise RetryableError(f"{t.describe()}: {tail(stderr) or 'the target root is not there'}")
    raise classify_stderr(stderr or why, f"{t.describe()}: listing failed ({why.decode(errors='replace')})")
