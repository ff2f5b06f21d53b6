"""keep_deleted riding in an rsync run's own ssh session (issue 17): no extra round trip.

rsync starts its receiver on the mirror host as `<rsync-path> --server ...` through the
remote shell, and rsync(1) says of --rsync-path that "PROGRAM is run with the help of a
shell, so it can be any program, script, or command sequence you'd care to run, so long
as it does not corrupt the standard-in & standard-out that rsync is using". So a run of
marked puts (SyncItem.keep_stamp, set by mirrord.trash.keeper on a target with
Features.keep_by_condition and Features.keeps_parents_in_put) gets

    --rsync-path="sh -c 'cd -- \"$1\" || exit 97; shift; KEEP_BODY' sh ROOT RECORDS 3>/dev/null >&2 && rsync"

KEEP_BODY (trash.py) keeps, in order, (parent, stamp, 'dir') for every parent of every
marked item, shallowest first (rsync --mkpath removes a FILE standing where a parent
goes: `rm d; mkdir d; echo > d/z` lost the file d unkept), then (path, stamp, 'file')
for each marked item; deduplicated. Its answers never reach rsync's protocol stream:
N/K on fd 3 go to /dev/null, failures (b"INDEX E TEXT\\0") to stderr, which ssh hands
to our rsync's stderr. Its exit status is 0 only when every keep succeeded, and `&&`
starts the receiver only then: when a keep fails nothing of the run is transferred, so
nothing is overwritten unkept. The same stamp names the same trash place, so a retry
after kill -9 keeps nothing twice (KEEP_BODY's existing-entry and link-count checks).
Each item's record carries what the run sends (its size: batch.py takes it from the
plan's look at the source, and the sha256 of its bytes, read then): a file that already
holds those bytes, whatever its mtime, is not kept (a re-send after a lost ack, or a
reconcile re-queue, filled the trash with copies of the very version being sent; a
touch seen live as a write kept the same bytes under the old mtime, helper-161); one
rewritten in place under the same size and mtime is (size and mtime alone let it be
overwritten unkept).

The records ride on the command line, which the login shell gets as one argument
(Linux caps one at 128 KiB, MAX_ARG_STRLEN): a run whose wrapper passes WRAP_LIMIT
has no stdin for them (rsync's stdin is its file list), so it is kept beforehand by one
keep_batch round trip instead (BatchRunner._keep_first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from mirrord.errors import RetryableError
from mirrord.targets.model import SyncItem
from mirrord.targets.rsync.remote import classify_stderr, q
from mirrord.targets.rsync.keep_script import KEEP_BODY, keep_records

# The whole remote command reaches the login shell as ONE argument of `sh -c` (and our ssh
# as one argv element): Linux caps one at 128 KiB (MAX_ARG_STRLEN). The wrapper may take
# 112 KiB of it; the rest is for rsync's --server arguments (the root, twice, in --temp-dir
# and the destination; PATH_MAX is 4 KiB). Stamps repeat as "=" (keep_records(compact=)),
# so a record is the path and ~85 bytes more (index, 'dir' or the version sent,
# SIZE:SHA256, ~67 bytes, '=', './', spaces, quotes): ~830 records of 50-byte paths fit.
WRAP_LIMIT = 112 << 10
FAILED = re.compile(rb"(?:^|[\0\n])(\d+) E ([^\0]*)\0")   # KEEP_BODY's failure records


@dataclass
class Keeps:
    """The keep requests of one rsync run and, per item index, the requests it needs."""

    requests: list[tuple] = field(default_factory=list)   # trash.keep_records' requests
    needs: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Sequence[SyncItem], indexes: Sequence[int],
           versions: Mapping[int, tuple] | None = None) -> "Keeps":
        """The requests for the marked ones of `items[i] for i in indexes`: parents
        ('dir', the stamp of the first item needing it) shallowest first, then each item
        ('file', with versions[i], the (size in bytes, mtime in ns, sha256 hex) the run
        sends, when given: those very bytes standing there are not kept), each (path, coming) once."""
        marked = [i for i in indexes if items[i].keep_stamp is not None]
        parents: dict[str, str] = {}
        for i in marked:
            for parent in _parents(items[i].path):
                parents.setdefault(parent, str(items[i].keep_stamp))
        out = cls()
        place: dict[tuple[str, str], int] = {}
        for p in sorted(parents, key=lambda p: (p.count("/"), p)):
            place[(p, "dir")] = len(out.requests)
            out.requests.append((p, parents[p], "dir"))
        for i in marked:
            path = items[i].path
            if (path, "file") not in place:
                place[(path, "file")] = len(out.requests)
                request = (path, str(items[i].keep_stamp), "file")
                version = (versions or {}).get(i)
                out.requests.append(request if version is None else request + (version,))
            out.needs[i] = [place[(p, "dir")] for p in _parents(path)] + [place[(path, "file")]]
        return out

    def item_errors(self, answers: Sequence[Exception | int | None]) -> dict[int, Exception]:
        """Item index -> the first error among the requests it needs (keep_batch answers)."""
        out: dict[int, Exception] = {}
        for i, needed in self.needs.items():
            err = next((answers[k] for k in needed if isinstance(answers[k], Exception)), None)
            if err is not None:
                out[i] = err
        return out


def wrapper(keeps: Keeps, root: bytes, rsync_path: bytes,
            check: bytes = b"") -> tuple[bytes | None, dict[int, Exception]]:
    """(the --rsync-path value running the keeps before `rsync_path`, or None when the
    wrapper would pass WRAP_LIMIT bytes; item index -> error for items a bad request fails).
    The keeps run only after `check` (RootGuard.shell: the root's check) passes."""
    answers: list = [None] * len(keeps.requests)
    records = keep_records(keeps.requests, answers, compact=True)
    bad = keeps.item_errors(answers)
    cmd = (b"sh -c 'cd -- \"$1\" || { echo \"cannot cd into the target root\"; exit 97; }; shift\n"
           + check + KEEP_BODY + b"' sh " + q(root) + b" " + b" ".join(q(r) for r in records)
           + b" 3>/dev/null >&2 && " + rsync_path)
    return (cmd if len(cmd) <= WRAP_LIMIT else None), bad


def run_errors(keeps: Keeps, stderr: bytes, indexes: Sequence[int],
               where: str) -> dict[int, Exception] | None:
    """After an rsync run of the items `indexes` with the wrapper: None when no keep
    failed (judge the run as usual); else item index -> error for EVERY item of the run
    (its receiver never started, nothing was transferred): an item whose own or parent's
    keep failed gets that failure, classified like keep_batch's (remote.classify_stderr:
    Retryable, or Permanent for e.g. Permission denied), the others a RetryableError
    naming the keep that stopped the run. `where` (RsyncTarget.describe) holds no
    credential."""
    failed = {int(m.group(1)): m.group(2) for m in FAILED.finditer(stderr)}
    failed = {k: text for k, text in failed.items() if k < len(keeps.requests)}
    if not failed:
        return None
    first = min(failed)
    stopped = RetryableError(f"{where}: not sent: keeping {keeps.requests[first][0]!r} "
                             f"failed first, so this rsync run did not start")
    out: dict[int, Exception] = {}
    for i in indexes:
        own = next((k for k in keeps.needs.get(i, ()) if k in failed), None)
        out[i] = (stopped if own is None else classify_stderr(
            failed[own], f"{where}: cannot keep {keeps.requests[own][0]!r}"))
    return out


def _parents(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b']."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]

