"""Applying one planned rsync batch on the mirror host.

Deletions and tree removals run first as one remote command; then the
metadata-only items as one remote script (mirrord.targets.rsync.remote:
chmod + touch to the nanosecond, same inode; an item whose file the host lost
joins the batch's rsync run); then ONE rsync per group:
`--files-from=- --from0 --protect-args` with the NUL-separated relative paths
on stdin, so a file name is never an option or shell word. No -r (a directory
item creates just the directory), no -l/-D (a symlink is never followed or
copied), -t -p keep nanosecond mtimes and permissions, temp files go to
`.mirrord/rsync-tmp` and are renamed into place (atomic, never listed, swept
at open()), and `--delete-missing-args` deletes whatever vanished in between.
Staged runs (items without a source tree) use --no-implied-dirs, so the 0755
staging parents never overwrite the modes of directories on the host. When
rsync reports partial failure, one remote stat of the group decides which
items failed (the remote calls around a run: transfer.py). Every error is
captured on its item's SyncResult.
"""

from __future__ import annotations

import os
import shutil
import stat as stat_mod
import tempfile
from typing import TYPE_CHECKING, Callable, Sequence

from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.failures import classify_oserror
from mirrord.targets.model import Entry, SyncItem, SyncResult
from mirrord.targets.mtime import ns_to_float
from mirrord.targets.rsync.inrun import Keeps, run_errors, wrapper
from mirrord.targets.rsync.plan import Plan, SourceDirs, Want, plan_item, stage
from mirrord.targets.rsync import transfer
from mirrord.targets.rsync.remote import (DELETE, LONG_TIMEOUT, META_SCRIPT, RETRY_EXIT,
                                          MetaDone, classify_stderr, item_stderr,
                                          meta_record, parse_answers, tail)
from mirrord.targets.rsync.trash import RsyncTrash
from mirrord.treewalk import file_digest

NO_TEMP_DIR = b"The temp-dir does not exist"   # rsync's message (main.c) for a --temp-dir gone

if TYPE_CHECKING:
    from mirrord.targets.rsync.target import RsyncTarget


class BatchRunner:
    """Runs sync() batches for one RsyncTarget (its connection, root and options)."""

    def __init__(self, target: "RsyncTarget"):
        self.t = target

    def sync(self, items: Sequence[SyncItem]) -> list[SyncResult]:
        """One result per item, in order; see the module docstring for the order of work."""
        results: list[SyncResult | None] = [None] * len(items)
        plan = Plan()
        seen = SourceDirs()
        for i, item in enumerate(items):
            try:
                plan_item(i, item, plan, seen)
            except (PermanentError, RetryableError) as exc:
                results[i] = SyncResult(item, error=exc)
            except OSError as exc:
                results[i] = SyncResult(item, error=classify_oserror(exc))
        # a marked put whose source vanished is a delete: kept first, as the keeper would
        failed = self._keep_first(items, [i for i, _, _ in plan.deletes])
        failed.update(self._apply_deletes([d for d in plan.deletes if d[0] not in failed]))
        for index, exc in failed.items():
            results[index] = SyncResult(items[index], error=exc)
        plan.metas = [m for m in plan.metas if m.index not in failed]
        if plan.metas:
            self._apply_metas(items, results, plan)
        for (src, dest), wants in plan.groups.items():
            self._apply_group(items, results, src, dest, [w for w in wants if w.index not in failed])
        if plan.staged:
            self._apply_staged(items, results, [w for w in plan.staged if w.index not in failed])
        return [r if r is not None else SyncResult(items[i]) for i, r in enumerate(results)]

    def _apply_metas(self, items, results, plan: Plan) -> None:
        """Run the metadata script for every meta-only item at once; an item whose file is
        not on the host joins the batch's rsync run (or fails NotFound with nothing to send)."""
        answers, why = self._run_metas([(m.index, m.path, m.mode, m.mtime_ns) for m in plan.metas])
        for m in plan.metas:
            item, got = items[m.index], answers.get(m.index, "E")
            if isinstance(got, MetaDone):
                entry = Entry(item.path, got.size, ns_to_float(got.mtime_ns),
                              mtime_ns=got.mtime_ns, mode=got.mode)
                results[m.index] = SyncResult(item, entry)
            elif got == "A" and m.send is not None:
                key, want = m.send
                (plan.staged if key == (b"", b"") else plan.groups.setdefault(key, [])).append(want)
            elif got == "A":
                results[m.index] = SyncResult(item, error=NotFound(
                    f"{item.path!r} is not a file on {self.t.describe()}"))
            else:
                results[m.index] = SyncResult(item, error=why(m.path))

    def _run_metas(self, records: list[tuple[int, bytes, int | None, int]]
                   ) -> tuple[dict[int, MetaDone | str], Callable[[bytes], Exception]]:
        """One remote script for all (index, path, mode, mtime_ns): answers by index, and,
        given a record's path, the error to report for it when it failed or was not
        answered: naming that path, with the script's stderr lines about it."""
        data = b"".join(meta_record(*r) + b"\0" for r in records)
        try:
            proc = self.t.conn.run(self.t.in_root(META_SCRIPT), data, timeout=LONG_TIMEOUT)
        except (RetryableError, PermanentError) as exc:
            down: Exception = exc   # `exc` itself is unbound after the except clause
            return {}, lambda _path: down

        def why(path: bytes) -> Exception:
            return classify_stderr(item_stderr(proc.stderr, path), f"{self.t.describe()}: "
                                   f"cannot set mode/mtime of {os.fsdecode(path)!r}")
        return parse_answers(proc.stdout), why

    def _apply_deletes(self, deletes: list[tuple[int, bytes, bool]]) -> dict[int, Exception]:
        if not deletes:
            return {}
        records = {(b"T" if tree else b"F") + b"./" + path: i for i, path, tree in deletes}
        try:
            proc = self.t.conn.run(self.t.in_root(DELETE), b"\0".join(records) + b"\0", timeout=LONG_TIMEOUT)
        except (RetryableError, PermanentError) as exc:
            return {i: exc for i in records.values()}
        failed = [r for r in proc.stdout.split(b"\0") if r in records]
        if proc.returncode != 0 and not failed:
            exc = classify_stderr(proc.stderr, f"{self.t.describe()}: delete failed")
            return {i: exc for i in records.values()}
        return {records[r]: classify_stderr(item_stderr(proc.stderr, r[3:]), f"{self.t.describe()}: "
                                            f"cannot delete {os.fsdecode(r[3:])!r}") for r in failed}

    def _apply_staged(self, items, results, wants: list[Want]) -> None:
        """Items that do not name their source: stage symlinks to `local`, rsync with -L."""
        staging = tempfile.mkdtemp(prefix="stage-", dir=self.t.conn.private_dir())
        try:
            base = os.fsencode(staging)
            staged = []
            for w in wants:
                try:
                    stage(base, w)
                except OSError as exc:
                    results[w.index] = SyncResult(items[w.index], error=classify_oserror(exc))
                else:
                    staged.append(w)
            self._apply_group(items, results, base, b"", staged, copy_links=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        fix = [w for w in staged if w.fixup and results[w.index].error is None]
        if fix:
            answers, why = self._run_metas([(w.index, w.rel, w.mode, w.mtime_ns) for w in fix])
            for w in fix:
                if not isinstance(answers.get(w.index), MetaDone):
                    results[w.index] = SyncResult(items[w.index], error=why(w.rel))

    def _keep_first(self, items, indexes: list[int],
                    versions: dict[int, tuple] | None = None) -> dict[int, Exception]:
        """Keep what the marked ones of these items need (inrun.Keeps, `versions`: what
        each sends) in one keep_batch round trip; item index -> error for those whose keep
        failed (not to be sent)."""
        keeps = Keeps.of(items, indexes, versions)
        if not keeps.requests:
            return {}
        return keeps.item_errors(RsyncTrash(self.t).keep_batch(keeps.requests))

    def _apply_group(self, items, results, src: bytes, dest: bytes, wants: list[Want], *,
                     copy_links: bool = False) -> None:
        """One rsync run for `wants`; marked items (SyncItem.keep_stamp) keep what the run
        destroys inside its own ssh session (inrun.wrapper), or, when their records are
        too long for a command line, in one keep_batch round trip first."""
        if not wants:
            return
        if dest and not transfer.dest_made(self.t, dest):
            exc = RetryableError(f"{self.t.describe()}: cannot make the directory {os.fsdecode(dest)!r}")
            for w in wants:
                results[w.index] = SyncResult(items[w.index], error=exc)
            return
        versions = {w.index: self._version(w, src, follow=copy_links) for w in wants
                    if w.kind == "file" and items[w.index].keep_stamp is not None}
        keeps = Keeps.of(items, [w.index for w in wants], versions)
        wrap: bytes | None = None
        errors: dict[int, Exception] = {}
        if keeps.requests:
            wrap, errors = wrapper(keeps, self.t.root, os.fsencode(self.t.opts.rsync_path),
                                   self.t.root_check())
            if wrap is None:
                errors = self._keep_first(items, [w.index for w in wants], versions)
        send = [w for w in wants if w.index not in errors]   # a keep failed: not sent
        if send:
            errors.update(self._run_group(dest, send, src, copy_links, keeps if wrap else None, wrap))
        for w in wants:
            item = items[w.index]
            error = errors.get(w.index)
            results[w.index] = (SyncResult(item, error=error) if error
                                else SyncResult(item, w.entry(item.path)))

    def _version(self, w: Want, src: bytes, *, follow: bool) -> tuple[int, int, str]:
        """(size in bytes, mtime in ns, sha256 hex of the bytes) of what `w` sends: the
        plan's look at the source. The host compares the size, then the bytes (KEEP_BODY
        runs sha256sum only when the sizes match), never the mtime: the same bytes under
        another mtime (coreutils touch seen live as a write) were kept as a duplicate (a
        trial, helper-161), and size and mtime alone let a same-size rewrite with its
        mtime put back be overwritten unkept (helper-155). The sha256 (of src/w.rel, what
        this run's rsync reads: a staged item's link is followed, `follow`) is read only
        for a marked put of a non-empty file; "" when it cannot be read, or changed under
        the plan's look: then what stands there is kept."""
        return w.size, w.mtime_ns, (_sha256(os.path.join(src, w.rel), w, follow) if w.size else "")

    def _run_group(self, dest: bytes, wants: list[Want], src: bytes, copy_links: bool,
                   keeps: Keeps | None, wrap: bytes | None, *,
                   again: bool = True) -> dict[int, Exception]:
        """Run rsync for `wants` (with the keep wrapper `wrap`); item index -> error. Items
        that failed below a symlink planted where a parent goes are sent once more (`again`)
        once it is removed; their keeps were made by the first run."""
        try:
            proc = transfer.run_rsync(self.t, src, dest, [w.rel for w in wants], copy_links=copy_links,
                               rsync_path=wrap)
        except (RetryableError, PermanentError) as exc:
            return {w.index: exc for w in wants}
        except OSError as exc:   # no rsync binary here
            return {w.index: classify_oserror(exc) for w in wants}
        if proc.returncode == 0:
            return {}
        if again and NO_TEMP_DIR in proc.stderr:
            # the mirror's root was made again empty behind us (a breaker removed the host's
            # root and made it again): nothing else recreates our staging directory until a
            # heartbeat is written, and none is while the mirror is taken for wiped
            # (mirrord.mirror_wiped). Made again, inside the existing root only; sent again.
            try:
                self.t.own_area()
            except (RetryableError, PermanentError) as exc:
                return {w.index: exc for w in wants}
            return self._run_group(dest, wants, src, copy_links, keeps, wrap, again=False)
        if keeps is not None:   # a failed keep stopped the run before its receiver started
            kept = run_errors(keeps, proc.stderr, [w.index for w in wants], self.t.describe())
            if kept is not None:
                return kept
        if proc.returncode in RETRY_EXIT:
            exc = RetryableError(f"{self.t.describe()}: rsync exit {proc.returncode}: {tail(proc.stderr)}")
            return {w.index: exc for w in wants}
        errors: dict[int, Exception | None] = dict(transfer.verify(self.t, dest, wants, proc))
        retry = [w for w in wants if w.index in errors and b"/" in w.rel] if again else []
        if retry and transfer.unlink_parents(self.t, dest, retry):   # sent once more: the way is clear
            errors.update(dict.fromkeys((w.index for w in retry), None))
            errors.update(self._run_group(dest, retry, src, copy_links, None, None, again=False))
        return {i: e for i, e in errors.items() if e is not None}


def _sha256(path: bytes, w: Want, follow: bool) -> str:
    """The sha256 (hex) of the regular file at `path`, "" when it cannot be read or is not
    what the plan saw (`w`: its size, and its mtime unless the put asks for another one,
    w.fixup) before and after the read (written meanwhile: the run sends other bytes)."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError:
        return ""
    try:
        before = os.fstat(fd)
        if (not stat_mod.S_ISREG(before.st_mode) or before.st_size != w.size
                or (not w.fixup and before.st_mtime_ns != w.mtime_ns)):
            return ""
        digest = file_digest(os.dup(fd))   # closes the duplicate
        after = os.fstat(fd)
    except OSError:
        return ""
    finally:
        os.close(fd)
    same = (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_size, before.st_mtime_ns, before.st_ctime_ns)
    return digest if same else ""
