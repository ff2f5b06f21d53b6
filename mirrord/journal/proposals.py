"""A comparison's proposal for a file whose put is in flight: sent again only if needed.

A catch-up (at start, after an overflow, the walk for new hard links: mirrord.catchup)
compares the source with the `shipped` table. A file whose put is at a worker is not in
`shipped` yet (or holds its older version), so the walk proposes it, and recorded over
the claimed row the proposal moved that row on (seq): the file was sent a second time
after the first put was acknowledged. Measured: a 512 MiB file renamed into the source
while a hard link to it stood outside was sent twice (SeaweedFS 10.3-11.6 CPU-s
against 5.5-6.0 for one put), the links walk having found it in flight.

Leaving such a proposal out is not safe: the worker looked at the file before the walk
did, and a write through a name the watcher does not see (the other hard link) between
the two looks would be lost until a reconcile. So the proposal is recorded as before,
and this remembers what the walk saw (`Seen`: size, mtime_ns, mode, ctime_ns). When the
put in flight is acknowledged and the file it shipped is the one the walk saw, the row is
done. "The one": size, mtime_ns and mode as any comparison (mirrord.compare.
against_shipped), and the inode change time, which no caller can set back: a breaker
rewrote the file through its outside name while the put was held, then put its mtime back
(`touch -r`, `rsync --inplace -t`); on size and mtime alone the walk's look matched the
worker's and the new bytes were never sent (the code before sent the file twice, so it
went). ctime moves with every write, truncate, chmod, link and rename, so a file that
changed between the worker's look (mirrord.observe: the ctime it read under, checked again
after the target stored it) and the walk's is sent again. Anything else keeps the row
too: a live change recorded after the proposal, a failed put, a mode the target did not
report.

Memory only, one entry per proposal over a row this process has in flight, kept once
the enqueue's transaction commits (a batch rolled back leaves none: a stale entry could
have been satisfied by another process's change moving the row to the same seq) and
forgotten when its id is given to a new row. A crash loses them, and the row is then
sent once more (what every restart did before). Left: two looks within one tick of the file
system's timestamp clock (ext4: the kernel's coarse clock) cannot tell a write between
them, as mirrord.observe.changed_since cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirrord.compare import stored_ns
from mirrord.journal.records import Outcome, _b


@dataclass(frozen=True)
class Seen:
    """A regular file as a comparison saw it: `size` (bytes), `mtime_ns`, `mode`
    (permission bits; None where the target does not keep modes, so not compared) and
    `ctime_ns` (the inode change time; 0: not known, and then nothing is settled)."""

    size: int
    mtime_ns: int
    mode: int | None = None
    ctime_ns: int = 0


class InFlightProposals:
    """The proposals recorded over this process's puts in flight, by row id."""

    def __init__(self, claimer: str):
        """`claimer`: the id this Journal claims rows under (mirrord.claimer)."""
        self.claimer = claimer
        self._rows: dict[int, tuple[bytes, int, Seen]] = {}   # id -> (path, seq after, seen)

    def __len__(self) -> int:
        return len(self._rows)

    def unchanged_put_in_flight(self, seq: int, claimed: int, kind: str, tree: bool,
                                claimer: str | None) -> bool:
        """Whether a row (its ops columns as read before a change is recorded over it) is
        a plain put (no tree removal) that this process has in flight and that no change
        has reached since its claim (`claimed` holds the seq claimed)."""
        return claimed != 0 and claimed == seq and kind == "put" and not tree and (
            claimer == self.claimer)

    def note(self, oid: int, path: bytes, seq_after: int, seen: Seen) -> None:
        """The proposal moved row `oid` (`path`) to `seq_after`; the walk saw `seen`."""
        self._rows[oid] = (path, seq_after, seen)

    def forget(self, oid: int) -> None:
        """A later change reached row `oid`: it is sent whatever the put in flight ships."""
        self._rows.pop(oid, None)

    def clear(self) -> None:
        """Claims were released (mirrord.journal.claims.release_claims): nothing is kept."""
        self._rows.clear()

    def satisfied(self, out: Outcome, seq_now: int) -> bool:
        """Whether the successful `out` shipped what the proposal over its row saw, the
        row at `seq_now` having moved on by that proposal alone. Forgets the row's entry
        either way (an id is used again once its row is deleted)."""
        entry = self._rows.pop(out.op.id, None)
        if entry is None:
            return False
        path, seq_after, seen = entry
        op = out.op
        if (path != _b(op.path) or seq_now != seq_after
                or seq_after != op.seq + 1 or out.error is not None
                or out.shipped_kind != "put" or out.is_dir):
            return False
        if (out.size, stored_ns(out.mtime_ns)) != (seen.size, stored_ns(seen.mtime_ns)):
            return False
        if not seen.ctime_ns or out.ctime_ns != seen.ctime_ns:
            return False   # the inode changed between the two looks (a breaker: below)
        return seen.mode is None or out.mode == seen.mode
