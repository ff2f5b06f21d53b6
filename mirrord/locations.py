"""Where each target's files live, as the state database last saw it.

The `shipped` table records, per (target, source), what was sent; that record belongs
to one location: a local target's `path`, a mirror host's `host`, `port` and `path`, an S3
target's `endpoint_url`, `bucket` and `prefix`, and the source's `dest` below each. Each is
compared as the place it names, not as spelled: a host name in any case (DNS names are
case-insensitive: RFC 4343), an endpoint's port left out or spelled as its scheme's default
(RFC 3986 6.2.3), and a local path as resolved at load (relative, `./`, a trailing '/', a
symlink to the same directory) are one place; re-sending a large bucket for a spelling would
be costly. A port is part of a host's place: port forwards (an SSH bastion, NAT) put
different machines behind one host name. The
catch-up at start trusts it, so with `[reconcile] at_start = no` a location changed
between two runs was never filled: the record said everything was there already.

So the location is stored beside the record (the `kv` table, one entry per target and
source) and compared at every start of the daemon. When it differs, that pair's
`shipped` rows are forgotten (one INFO line names the target, the source and what
changed; no credential: an endpoint's user info and query are left out), and the
catch-up that follows every start sends every file of the source there, whatever
`at_start` says. Nothing is deleted at the old location: the catch-up proposes deletes
only for what is recorded. Re-sending was chosen over a listing pass: it needs no listing
(what `at_start = no` avoids on a large bucket) and is exact; a new location that already
holds a copy gets it sent once more.

A pair with rows but no stored location (a database from before this check) keeps its
rows: the location they belong to cannot be known, and the config's is taken as it. So
does a field a stored location lacks (recorded before that field was part of it).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit, urlunsplit

from mirrord.config import Config, SourceConfig, TargetConfig
from mirrord.journal import Journal
from mirrord.logsetup import kv

log = logging.getLogger("mirrord.daemon")


def location(target: TargetConfig, source: SourceConfig) -> dict[str, str]:
    """The fields that name where `source`'s files land on `target` (strings; no
    credential); what else a target section holds (workers, keys, timeouts) is not part
    of it: changing it changes no file's place."""
    where: dict[str, str] = {"type": target.type}
    if target.local is not None:
        where["path"] = str(target.local.path)
    if target.rsync is not None:
        where.update(host=target.rsync.host.lower().rstrip("."), port=str(target.rsync.port),
                     path=target.rsync.path)
    if target.s3 is not None:
        where.update(endpoint_url=_plain_url(target.s3.endpoint_url), bucket=target.s3.bucket,
                     prefix=target.s3.prefix)
    where["dest"] = source.dest
    return where


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _plain_url(url: str) -> str:
    """`url` without user info, query or fragment (where a credential could sit)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:   # an IPv6 literal gets its brackets back
        host = f"[{host}]"
    port = parts.port if parts.port != _DEFAULT_PORTS.get(parts.scheme) else None
    netloc = host.rstrip(".") + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _key(target: str, source: str) -> str:
    return "location:" + json.dumps([target, source])


def check(journal: Journal, cfg: Config) -> list[tuple[str, str]]:
    """Compare every (target, source) route of `cfg` with the location stored for it;
    forget the `shipped` rows of each pair whose location changed, store the current
    ones, all in one transaction. Returns the (target, source) pairs forgotten. Raises
    what the journal raises (sqlite3.Error)."""
    voided: list[tuple[str, str]] = []
    with journal.transaction():
        for src in cfg.sources:
            for name in src.targets:
                now = location(cfg.targets[name], src)
                was = journal.get_state(_key(name, src.name))
                if was is not None and _moved(was, now):
                    rows = journal.forget_shipped(name, src.name)
                    voided.append((name, src.name))
                    log.info(kv(msg="target location changed: what was shipped there is "
                                "forgotten and every file is sent again", target=name,
                                source=src.name, forgotten=rows, changed=_changes(was, now)))
                if was != now:
                    journal.set_state(_key(name, src.name), now)
    return voided


def _moved(was: dict, now: dict) -> bool:
    """Whether a field both `was` and `now` hold differs (one `was` lacks is not compared)."""
    return any(k in was and was[k] != v for k, v in now.items())


def _changes(was: dict, now: dict) -> str:
    """`field: old -> new` for each field that differs, comma separated."""
    keys = list(now) + [k for k in was if k not in now]
    return ", ".join(f"{k}: {was.get(k, '')!r} -> {now.get(k, '')!r}"
                     for k in keys if was.get(k) != now.get(k))
