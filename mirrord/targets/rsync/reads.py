"""The rsync target's reads of single files on the mirror host and its writes of the
`.mirrord/` meta files (the heartbeat), as remote commands: a mixin of RsyncTarget,
which owns the connection (`_run`, `in_root`, `_rel`, `_check`, `describe`).

Every path is checked for a symlink on the way (remote.NOLINK): a link planted in the
mirror is never followed out of it.
"""

from __future__ import annotations

import os

from mirrord.errors import PermanentError
from mirrord.targets.paths import META_DIR, META_LIMIT
from mirrord.targets.rsync.remote import EXIT_ABSENT, MKDIRS, NOLINK, RSYNC_TMP, q


class RemoteReads:
    """read, checksum, write_meta and read_meta of Target, for RsyncTarget."""

    def read(self, path: str) -> bytes | None:
        return self._cat(self._rel(path), path)

    def _cat(self, p: bytes, what: str, *, limit: int | None = None,
             meta: bool = False) -> bytes | None:
        """The file's bytes (None: absent); PermanentError past `limit` bytes, of which at
        most one more is read (head -c: nothing larger crosses the connection); `meta`: in
        the meta slot (connection.SshConnection.session)."""
        read = b"cat --" if limit is None else b"head -c %d --" % (limit + 1)
        proc = self._run(self.in_root(NOLINK + (
            b"nolink %s && [ -f %s ] || exit %d\nexec %s %s" % (p, p, EXIT_ABSENT, read, p))),
            meta=meta)
        if proc.returncode == EXIT_ABSENT:
            return None
        self._check(proc, f"cannot read {what!r}")
        if limit is not None and len(proc.stdout) > limit:
            raise PermanentError(f"{self.describe()}: {what!r} holds more than {limit} bytes: not read")
        return proc.stdout

    def checksum(self, path: str) -> str | None:
        p = self._rel(path)
        proc = self._run(self.in_root(NOLINK + (
            b"nolink %s && [ -f %s ] || exit %d\nsha256sum < %s" % (p, p, EXIT_ABSENT, p))))
        if proc.returncode in (EXIT_ABSENT, 127):   # absent, or no sha256sum on the host
            return None
        self._check(proc, f"cannot checksum {path!r}")
        return proc.stdout.split()[0].decode("ascii")

    # ------------------------------------------------------------ meta
    @staticmethod
    def _meta(name: str) -> bytes:
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise PermanentError(f"bad meta name {name!r}")
        return q(b"./" + META_DIR.encode() + b"/" + os.fsencode(name))

    def write_meta(self, name: str, data: bytes) -> None:
        """Atomically replace `.mirrord/<name>` (the heartbeat every few seconds): the own
        area is made real first (mkdirs: a symlink planted at .mirrord after open() had the
        heartbeat written outside), a directory standing at the name is removed, and the
        rename is `mv -T` (a plain `mv` moved the file INTO a directory or a symlink to one
        there: the heartbeat went outside, or was lost, with success reported)."""
        target = self._meta(name)
        body = (MKDIRS + b"mkdirs ./%s && t=$(mktemp ./%s/meta.XXXXXX) || exit 1\n"
                % (RSYNC_TMP, RSYNC_TMP)
                + b"if [ -d %s ] && [ ! -L %s ]; then rm -rf -- %s; fi\n" % (target, target, target)
                + b"if cat >\"$t\" && chmod 644 \"$t\" && mv -T -f -- \"$t\" %s; then exit 0; fi\n"
                b"rm -f -- \"$t\"; exit 1" % target)
        self._check(self._run(self.in_root(body), bytes(data), meta=True),   # a slot of its own
                    f"cannot write {META_DIR}/{name}")

    def read_meta(self, name: str) -> bytes | None:
        # the meta slot: the daemon reads its heartbeat back before each write (mirror_wiped)
        return self._cat(self._meta(name), f"{META_DIR}/{name}", limit=META_LIMIT, meta=True)

