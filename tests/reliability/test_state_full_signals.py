"""While the state database cannot be written, nothing says in_sync.

A breaker: with the state disk full and 105 changes held in memory, status said `in_sync
0 pending`, the heartbeat on every target was rewritten each second with `in_sync`,
`pending 0`, the metrics and /ready agreed, and a failover reading that heartbeat would
have gone ahead on a mirror lacking them. The backlog is read from the database, which
does not hold them. Now the heartbeat says degraded with the count held (the daemon
writes it to the target, not to the database), and `mirrord status`, reading a state
document the daemon cannot renew, says unknown once it is stale."""

from __future__ import annotations

import json
import os

from tests.reliability.conftest import poll, tmpfs
from tests.reliability.test_state_full_exact import state_on
from tests.reliability.test_state import _fill


def test_a_full_state_disk_is_no_in_sync(tmp_path, seaweedfs, sshd):
    state = tmp_path / "state"
    with tmpfs(state, "16m"):
        e = state_on(state, tmp_path, seaweedfs, sshd)
        try:
            (e.src / "a").write_bytes(b"before")
            e.daemon.start()
            e.assert_exact(timeout=240, by="the catch-up")
            _fill(state)
            for i in range(30):
                (e.src / f"n{i:02d}").write_bytes(os.urandom(700))
            poll(lambda: "cannot write the journal" in e.log_text(), what="journal error logged")

            def heartbeat_says_held():
                hb = json.loads(e.targets["local"].read_meta("heartbeat.json") or b"{}")
                return (hb.get("state") == "degraded" and "cannot be written" in hb.get("reason", "")
                        and hb.get("pending", 0) >= 1)
            poll(heartbeat_says_held, timeout=60, what="the heartbeat saying changes are held")

            def status_says_stale():
                doc = json.loads(e.daemon.cli("status", "--json", check=False).stdout)
                return all(t["state"] == "unknown" and "last update" in t["state_reason"]
                           for t in doc["targets"].values())
            poll(status_says_stale, timeout=60, what="status saying its state is stale")
            text = e.daemon.cli("status", check=False).stdout
            rows = [ln.split() for ln in text.splitlines() if ln.split()[:1] in (["local"], ["s3"], ["host"])]
            assert len(rows) == 3 and all(r[1] == "unknown" for r in rows), text
            (state / "filler").unlink()
            e.assert_exact(timeout=240, by="the live stream")

            def in_sync_again():
                doc = json.loads(e.daemon.cli("status", "--json", check=False).stdout)
                return all(t["state"] == "in_sync" for t in doc["targets"].values())
            poll(in_sync_again, timeout=60, what="in_sync once written")
        finally:
            e.close()
