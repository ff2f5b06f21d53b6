"""The journal's records and its path encoding.

Change goes in (what the watcher or a scan saw), Op comes out of claim() (what a
worker should do), Outcome goes back in through ack() (what the worker did);
RowState and TargetBacklog are what readers are told. Paths are stored as BLOBs
of their os.fsencode() bytes, so a name that is not UTF-8 keeps its exact bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mirrord.logsetup import mask_secrets, redact

if TYPE_CHECKING:
    from mirrord.journal.proposals import Seen


def _b(path: str) -> bytes:
    return os.fsencode(path)


def _s(blob: bytes) -> str:
    return os.fsdecode(bytes(blob))


def _text(message: str | None) -> str | None:
    """An error message (str) safe for a TEXT column, None for None: a path that is not
    UTF-8 reaches us surrogate-escaped, which sqlite3 refuses to bind (failing the whole
    ack); and a credential in it masked (logsetup.redact), as status and the log show it:
    an rsync target's ssh error could quote its ssh_command's password, and the state
    database kept it whole (a review, helper-144)."""
    if message is None:
        return None
    return _bindable(redact(message))


def _bindable(text: str) -> str:
    """`text` with a surrogate-escaped byte (a path that is not UTF-8) written as `\\xNN`."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error_at(path: str, message: str | None) -> str:
    """`path: message` for a target's last error: the message as _text stores it, the path
    (user data) with only registered secret values masked (logsetup.mask_secrets): the
    patterns rewrote a name such as `docs/api_token=list.txt` (helper-146)."""
    return f"{_bindable(mask_secrets(path))}: {_text(message)}"


def ship_key(path: str, is_dir: bool) -> bytes:
    """The `shipped` table key: path bytes, directories as 'path/' (mirrord.treewalk.entry_key)."""
    return _b(path) + (b"/" if is_dir else b"")


def _prefix_upper(prefix: bytes) -> bytes:
    """Smallest byte string greater than every string starting with `prefix` + b'/'."""
    return prefix + b"0"  # '0' is the byte after '/'


@dataclass(frozen=True)
class Change:
    """Something that happened at a source path, as the watcher or a scan saw it."""

    source: str
    path: str
    kind: str                       # put | delete | mkdir | attr (mode/mtime only: see Journal)
    tree: bool = False              # remove everything at/below path first
    size: int = 0
    time: float = 0.0
    targets: tuple[str, ...] | None = None   # None: every target of the source
    delay: float = 0.0
    # A reconcile pass's proposal: left alone when an op of the path is in flight (anything
    # but an 'attr' one), which ships the source's state as it was when it ran. Recorded
    # anyway, it moved that op on (seq) and the same file went twice (found under load: the
    # start pass listed a target while the catch-up's puts were in flight). A row waiting
    # (or backing off after failures) is recorded over as before: it runs at once.
    repair: bool = False
    # A catch-up's proposal of a file (mirrord.journal.proposals.Seen: its size, mtime_ns,
    # mode and ctime_ns as the walk saw them): recorded over a put in flight as any change,
    # but done at that put's acknowledgement when it shipped that file (no second send).
    seen: Seen | None = None
    # A comparison's delete (catch-up's; reconcile's carry `repair`): the source no longer
    # holds the path. Recorded over a queued delete that carries the name the file was
    # renamed to (the row's src: a move's source end, a rename's fallback), it keeps that
    # name, which a live delete drops (the file came back and went again). Dropped, the
    # delete ran as a plain one and the trash kept the renamed file as 'deleted': a start
    # pass that walked after `mv a b` and listed the target before the move proposed a put
    # of b and a delete of a (tests/integration/test_rename_then_proposals_keep_nothing.py).
    # The name is only a hint: the keeper checks the target holds that version there.
    proposed: bool = False
    # An 'attr' change of a directory (a chmod, chown or ACL change: IN_ATTRIB, FAN_ATTRIB
    # with the directory flag): the failed rows below it are retried at once, since what
    # made them unreadable at the source may be what changed (RetryMixin.retry_below).
    # The row itself is recorded as any attr change; the source root's ("") records none.
    is_dir: bool = False


@dataclass(frozen=True)
class Op:
    """A claimed row: what a worker should do, frozen at claim time."""

    id: int
    seq: int
    target: str
    source: str
    path: str
    kind: str
    src: str | None
    is_dir: bool
    tree: bool
    attempts: int
    event_time: float
    src_shipped: tuple[int, int, int | None] | None = None   # moves: (size, mtime_ns, mode) of src as last shipped
    shipped: tuple[int, int, int | None] | None = None   # attr ops: (size, mtime_ns, mode) of path as last shipped
    first_seen: float = 0.0   # the time of the oldest change the row holds (0: not known)


@dataclass
class Outcome:
    """A worker's answer for one Op; `error` None means done."""

    op: Op
    shipped_kind: str = ""          # put | meta | delete | mkdir | move | skip
    size: int = 0
    mtime_ns: int = 0
    token: str | None = None
    is_dir: bool = False
    mode: int | None = None         # permission bits shipped (None: target does not keep them)
    error: str | None = None
    permanent: bool = False
    rescan: bool = False            # a directory must be walked and re-sent (move fell back)
    check: bool = False             # a directory moved on the target: compare below it (subtree check)
    merged: bool = False            # that move left what stood below its destination (Features.move_merges)
    busy: bool = False              # error: the source file is still open for writing (a wait)
    now_file: bool = False          # busy: a mkdir found a file at its path (errors.BecameAFile): its row becomes that file's put
    landed: bool = False            # error: a put the target stored, the file changed meanwhile (errors.ChangedWhileSent): held, not recorded
    clear_below: bool = False       # a delete with nothing at the source: what the record still names below it goes too (ClaimAckMixin._done)
    kept_below: bool = False        # a put (no tree op) on a target without directories (S3): the keys below its path stand on
    ctime_ns: int = 0               # a put's: the source file's inode change time when the worker looked (0: not known; mirrord.journal.proposals)


@dataclass(frozen=True)
class RowState:
    """Where a queued row stands (Journal.row_states); a row that is gone was done."""

    attempts: int
    claimed: bool
    next_try: float                 # wall-clock seconds
    last_error: str | None
    busy: bool
    held: str | None = None         # the held source whose delete it is or waits behind


@dataclass
class TargetBacklog:
    target: str
    pending: int = 0
    pending_bytes: int = 0
    oldest: float | None = None
    failing: int = 0
    waiting: int = 0                # rows waiting for a writer to close the file (busy)
    last_error: str | None = None
    extra: dict = field(default_factory=dict)
