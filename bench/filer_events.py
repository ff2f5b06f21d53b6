"""When each object appeared on SeaweedFS, read from its filer's metadata log after a run.

Why: a latency measurement to S3 needs the moment an object became visible,
for every file, without loading the server while the tool under test works
(issue 15: a poller competes with SeaweedFS for the same two cores). The filer
stamps every metadata change with its own wall-clock time (`tsNs`, Unix
nanoseconds) as it commits the entry, before the PutObject response leaves, so
`weed filer.meta.tail -timeAgo=... -untilTimeAgo=1ms` replays those stamps once
the run is over (it exits when it reaches "now"). Source close times taken with
time.time() on the same host share the clock (CLOCK_REALTIME), so latency is
tsNs - close time, with no observer running during the measurement at all.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.services.seaweedfs import weed_binary


def appeared(server, bucket: str, prefix: str, size: int, *, since_s: float,
             log: Path) -> dict[str, float]:
    """File name -> Unix time (seconds) of the first event that showed it under
    `bucket`/`prefix` at `size` bytes, over the last `since_s` seconds.

    server: a tests.services.seaweedfs.SeaweedFS (its filer port is used); the raw
    event stream is kept in `log`. Raises RuntimeError when `weed` fails or prints
    something that is not its JSON event stream."""
    path = f"/buckets/{bucket}/{prefix.strip('/')}/"
    argv = [weed_binary(), "filer.meta.tail", f"-filer=127.0.0.1:{server.ports['filer']}",
            f"-pathPrefix={path}", f"-timeAgo={max(1, int(since_s + 1))}s", "-untilTimeAgo=1ms"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"weed filer.meta.tail exited {out.returncode}: {out.stderr[-500:]}")
    seen: dict[str, float] = {}
    for ev in _events(out.stdout):
        entry = (ev.get("eventNotification") or {}).get("newEntry") or {}
        name = entry.get("name")
        if name and int((entry.get("attributes") or {}).get("fileSize", -1)) == size:
            seen.setdefault(name, int(ev["tsNs"]) / 1e9)
    return seen


def _events(text: str):
    """The concatenated, pretty-printed JSON objects `weed filer.meta.tail` prints."""
    decoder, pos = json.JSONDecoder(), 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        try:
            ev, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise RuntimeError(f"unexpected output from weed filer.meta.tail at {pos}: "
                               f"{text[pos:pos + 200]!r}") from exc
        yield ev
