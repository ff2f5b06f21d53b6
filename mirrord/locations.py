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
`shipped` rows are set aside under the old location (the `shipped_aside` table; one
INFO line names the target, the source and what changed; no credential: an endpoint's
user info and query are left out), and the catch-up that follows every start sends every
file of the source to the new place, whatever `at_start` says: its record is empty.
Re-sending was chosen over a listing pass: it needs no listing (what `at_start = no`
avoids on a large bucket) and is exact; a new location that already holds a copy gets it
sent once more.

A location used before is no new place: A, then B, then A again. What was deleted or
renamed away at the source while mirrord pointed at B is still at A, and only A's own
record can say so: forgetting it (as this module once did) left those files at A for
good, since the catch-up proposes deletes only for what is recorded. So on a return the
rows set aside for A become the pair's record again, and the catch-up compares them with
the source: it deletes at A what is gone, re-sends what changed, sends what is new; those
deletes are the catch-up's own, so the mass-change alarm (and `pause_on_alarm`) and the
refusal to delete for an empty source root apply to them as to any other. Nothing is
deleted at a place left and never returned to.

Bounded: the records of the last ASIDE_KEEP locations a pair left are kept (one copy of
the rows each: measured about 110 bytes a file with 30-byte paths and an ETag, and 0.2 s
to move 100,000 rows aside, once per location change); an older one is dropped, and a return to it
is a first visit (every file sent, nothing deleted there).

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

ASIDE_KEEP = 4   # locations left whose record is kept per (target, source), newest first


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


def _aside_key(target: str, source: str) -> str:
    return "locations-aside:" + json.dumps([target, source])


def check(journal: Journal, cfg: Config) -> list[tuple[str, str]]:
    """Compare every (target, source) route of `cfg` with the location stored for it; for
    each pair whose location changed, set its `shipped` rows aside under the old location
    and restore those set aside for the new one, if it was used before; store the current
    locations; all in one transaction. Returns the (target, source) pairs that changed.
    Raises what the journal raises (sqlite3.Error)."""
    changed: list[tuple[str, str]] = []
    with journal.transaction():
        for src in cfg.sources:
            for name in src.targets:
                now = location(cfg.targets[name], src)
                was = journal.get_state(_key(name, src.name))
                if was is not None and _moved(was, now):
                    _switch(journal, name, src.name, was, now)
                    changed.append((name, src.name))
                if was != now:
                    journal.set_state(_key(name, src.name), now)
    return changed


def _switch(journal: Journal, target: str, source: str, was: dict, now: dict) -> None:
    """Set the pair's record aside under `was`, bring back the one set aside for `now`
    (a location matches when no field both hold differs), keep ASIDE_KEEP of them."""
    aside: list[dict] = journal.get_state(_aside_key(target, source), [])
    # rows in flight (a kill -9 before their ack) run again at the new place: what they
    # did at the old one is marked not known in its record before it is set aside
    journal.mark_in_flight_unsure(target, source)
    set_aside = journal.set_shipped_aside(target, source, _id(was))
    back = next((loc for loc in aside if not _moved(loc, now)), None)
    restored = journal.restore_shipped(target, source, _id(back)) if back is not None else 0
    kept = [was] + [loc for loc in aside if loc is not back and _id(loc) != _id(was)]
    for old in kept[ASIDE_KEEP:]:
        journal.drop_shipped_aside(target, source, _id(old))
    journal.set_state(_aside_key(target, source), kept[:ASIDE_KEEP])
    if back is None:
        log.info(kv(msg="target location changed: what was shipped there is set aside and "
                    "every file is sent again", target=target, source=source,
                    set_aside=set_aside, changed=_changes(was, now)))
    else:
        log.info(kv(msg="target location changed back to one used before: its record is "
                    "restored and the catch-up repairs what changed since", target=target,
                    source=source, set_aside=set_aside, restored=restored,
                    changed=_changes(was, now)))


def _id(loc: dict) -> str:
    """The key a location's set-aside rows are stored under (its fields, sorted)."""
    return json.dumps(loc, sort_keys=True)


def _moved(was: dict, now: dict) -> bool:
    """Whether a field both `was` and `now` hold differs (one `was` lacks is not compared)."""
    return any(k in was and was[k] != v for k, v in now.items())


def _changes(was: dict, now: dict) -> str:
    """`field: old -> new` for each field that differs, comma separated."""
    keys = list(now) + [k for k in was if k not in now]
    return ", ".join(f"{k}: {was.get(k, '')!r} -> {now.get(k, '')!r}"
                     for k in keys if was.get(k) != now.get(k))
