"""The exception hierarchy: what kind of failure it is decides what happens next.

Retryable target errors are retried with backoff; permanent ones are recorded on
the journal row and retried rarely; configuration errors stop the program with
exit code 2 before anything runs. cause_of: what failures of many paths for one
reason have in common, for grouping them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class MirrordError(Exception):
    """Base of every error mirrord raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, located precisely."""

    file: str
    section: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"[{self.section}]" if self.section else "(file)"
        key = f" {self.key}" if self.key else ""
        return f"{self.file}: {where}{key}: {self.message}"


class ConfigError(MirrordError):
    """The configuration is unusable; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem], warnings: tuple[str, ...] = ()):
        self.problems = list(problems)
        # what was also found in a file with problems (a secret readable by others):
        # shown beside the problems, or the operator fixed them and never saw it
        self.warnings = tuple(warnings)
        super().__init__("\n".join(str(p) for p in self.problems))


class TargetError(MirrordError):
    """A target operation failed."""


class RetryableError(TargetError):
    """Transient: network trouble, 5xx, throttling, disk full. Retry with backoff."""


class MaybeStored(RetryableError):
    """A write whose request left whole and whose answer never came: a read timeout, or the
    connection reset or closed empty after the body was sent. The target may have stored
    it (S3 makes an object visible when it has the whole body, whether or not the answer
    reaches the client). Retried as any RetryableError; a put failing so is marked landed
    (ops.landed, as for ChangedWhileSent), so on a target without directories a mkdir
    over that name is not sent beside a put below it (mirrord.journal.key_overlaps: the
    `rm X; mkdir X; echo > X/y` of a review, after a timed-out PutObject X), and the
    mass-change alarm takes the version as held there. A refused connection, a failed
    name lookup or any answer received is not this: nothing was stored."""


class PermanentError(TargetError):
    """Will not succeed by retrying soon: bad name for this target, permission denied."""


class MirrorRootMissing(PermanentError):
    """A target opened read-only (Target.open) whose root does not exist: on a mirror host,
    usually its file system not mounted. Failover refuses on it (failover.heartbeat.judge)."""


class NotAHeartbeat(PermanentError):
    """Something other than a regular file stands at a target's `.mirrord/heartbeat.json`
    (a directory, a symlink, a FIFO: Target.meta_kind): failover's heartbeat.age says what,
    where "no heartbeat.json" sent the operator looking for a missing file
    (failover.heartbeat.read). A `.mirrord` that is itself no directory is refused as
    MirrorRootMissing first (targets.root_check), with the same words appended."""


class SourceBusy(RetryableError):
    """The source is not ready to be shipped as the op saw it: a file still open for writing
    (a read lease was refused: sent once the writer closes it, never half-written), a file
    that changed while it was being sent, a delete that finds its file back, or (rsync) a
    path that holds another kind than the shipper saw (mirrord.ship_rules, the rsync plan).
    The change that explains it runs the row again. A wait, not a failure: the journal
    counts it apart (target_stats.busy; `mirrord status` shows "waiting for writers"), so a
    web app's lock files (opened, locked, removed, then closed) do not show as FAILED."""


class ChangedWhileSent(SourceBusy):
    """SourceBusy after the target stored the file: what the worker read is on the target,
    but the file changed while it was sent (observe.changed_since), so it is not recorded
    as shipped. The mass-change alarm still takes that version as held there
    (mirrord.journal.first_copies: landed, not recorded): a rewrite whose event came after
    this answer counted no overwrite (a CI run of tests/e2e/test_alarm_slow_rewrite.py, 17
    of 20)."""


class BecameAFile(SourceBusy):
    """SourceBusy of a directory's mkdir (not a tree's) that found a file at its path: the
    path became a file since its row was queued. Nothing is sent; the row, unchanged since
    its claim, is made the put of that file (journal failures._busy), so the put is claimed
    under its own rules (ship_rules.not_yet says why a mkdir never sends a file)."""


class NotFound(TargetError):
    """The object a move or read needed is not on the target."""


class JournalError(MirrordError):
    """The journal cannot be opened or is damaged; never start empty over it."""


class JournalUnusable(JournalError):
    """The state database cannot be used as it stands: damaged, not a file, or it cannot be
    opened (permissions, a read-only directory). Exit code 2: the operator fixes it
    (mirrord.journal.opening says how, in one line)."""


class FailoverRefused(MirrordError):
    """A failover precondition failed (exit code 3)."""


class StateDirError(MirrordError):
    """[mirrord] state_dir cannot be made or written here (a file in its way, a read-only
    file system, a directory of /proc): `path` and `reason` (the OS's words). A config
    error, exit 2, naming the key (mirrord.cli.dispatch); it was a bare OS error, exit 1."""

    def __init__(self, path: object, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


class FatalError(MirrordError):
    """Stop the program with exit code 1 and this message."""


# A quoted word in an error text: 'x' (repr) or "x" (repr of a name holding a ', rsync's
# and coreutils' messages)
_QUOTED = re.compile(r"""'([^'\n]*)'|"([^"\n]*)\"""")


def cause_of(error: str, path: str) -> str:
    """The cause in an error text recorded for `path` (a str, relative to its source or
    to the target): `error` with every quoted mention of that path, as it stands or below
    a prefix ('dest/path', './path', '/root/dest/path'), replaced by '…'. Failures of many
    files for one reason (a directory made immutable, a target down) name each its own
    path; grouped by this text they are one log line (mirrord.pipeline.log_retrying) and
    one line of a reconcile summary (mirrord.reconcile.session), not one per file."""
    def unnamed(m: re.Match) -> str:
        word = m.group(1) if m.group(1) is not None else m.group(2)
        return "'…'" if word == path or word.endswith("/" + path) else m.group(0)
    return _QUOTED.sub(unnamed, error)
