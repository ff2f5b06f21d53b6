"""heartbeat.judge checks the state the primary wrote, not only age and pending (brkB).

A degraded target (a source root lost, deletes held: nothing pending, README's state
table), a catch-up walk under way or a first copy not finished can come with a fresh
heartbeat and 0 pending; failover, switchover and /ready once took that for a mirror
in sync. A heartbeat from a version that writes no `state` is judged as before.
"""

from __future__ import annotations

import json

import pytest

from mirrord import target_state
from mirrord.config import load
from mirrord.failover import heartbeat, readiness, replica
from mirrord.failover.result import FAIL, WARN
from mirrord.heartbeat import Heartbeat, parse

T = 1_800_000_000.0


def hb(**fields) -> Heartbeat:
    return Heartbeat(unix=T - 1.0, time="2027-01-15T08:00:00.000Z", host="primary",
                     target="mirror", **fields)


def judged(h: Heartbeat, severity: str = FAIL) -> dict:
    checks = heartbeat.judge(h, "", target="mirror", now=T, max_age=60, severity=severity)
    return {c.name: c for c in checks}


NOT_IN_SYNC = [
    pytest.param(dict(state="degraded", degraded=True,
                      reason="source up: root lost (gone); nothing of it is watched or "
                             "deleted until it is back"), "root lost", id="degraded-root-lost"),
    pytest.param(dict(state="degraded", reason="source up: deletes held (the target keeps "
                      "what the source no longer holds) until `mirrord resume-deletes "
                      "--source up`"), "resume-deletes", id="degraded-deletes-held"),
    pytest.param(dict(state="degraded", degraded=True, unwatched_directories=40,
                      reason="source up: 40 directories not watched"), "40 directories",
                 id="degraded-unwatched"),
    pytest.param(dict(state="catching_up", reason="catch-up walk of source up under way"),
                 "catch-up walk", id="catching-up"),
    pytest.param(dict(state="initial_sync", reason="catch-up walk of source up under way"),
                 "catch-up walk", id="initial-sync"),
    pytest.param(dict(state="stalled", pending=0), "nothing has been shipped",
                 id="stalled-no-reason"),
    pytest.param(dict(degraded=True, unwatched_directories=3), "3 directories not watched",
                 id="no-state-but-unwatched"),
]


@pytest.mark.parametrize("fields,why", NOT_IN_SYNC)
def test_a_fresh_heartbeat_with_nothing_pending_but_not_in_sync_fails_heartbeat_state(fields,
                                                                                      why):
    checks = judged(hb(**fields))
    assert checks["heartbeat.age"].ok and checks["heartbeat.pending"].ok
    state = checks["heartbeat.state"]
    assert not state.ok and state.refuses and state.limit == "in_sync"
    assert state.value.startswith(fields.get("state") or "not reported")
    assert why in state.message and "primary" in state.message
    assert state.data["state"] == fields.get("state", "")


@pytest.mark.parametrize("fields,why", NOT_IN_SYNC)
def test_failover_severity_makes_it_a_warning_as_for_pending(fields, why):
    state = judged(hb(**fields), severity=WARN)["heartbeat.state"]
    assert not state.ok and state.status == "WARN" and not state.refuses


def test_in_sync_passes():
    checks = heartbeat.judge(hb(state="in_sync", reason="nothing pending"), "", target="mirror",
                             now=T, max_age=60)
    assert [c.name for c in checks] == ["heartbeat.age", "heartbeat.pending", "heartbeat.state"]
    assert all(c.ok for c in checks)
    assert checks[2].value == "in_sync"


def test_a_heartbeat_without_state_is_judged_on_age_and_pending_as_before():
    """An older writer (no `state`, `degraded` or `unwatched_directories`): no new check."""
    doc = {"version": 1, "time": "2027-01-15T08:00:00.000Z", "unix": T - 1.0,
           "host": "primary", "target": "mirror", "pending": 0, "oldest_pending_age": 0.0}
    checks = heartbeat.judge(parse(json.dumps(doc).encode()), "", target="mirror", now=T,
                             max_age=60)
    assert [(c.name, c.ok) for c in checks] == [("heartbeat.age", True),
                                                ("heartbeat.pending", True)]


def test_a_degraded_flag_without_state_still_fails():
    state = judged(hb(degraded=True))["heartbeat.state"]
    assert not state.ok and state.value == "not reported, degraded"


def test_every_state_but_in_sync_is_explained_when_the_heartbeat_gives_no_reason():
    assert heartbeat.IN_SYNC == target_state.IN_SYNC
    assert set(heartbeat.STATE_MEANS) == set(target_state.STATES) - {target_state.IN_SYNC}


def test_an_unknown_state_fails_safe():
    state = judged(hb(state="resyncing"))["heartbeat.state"]
    assert not state.ok and state.value == "resyncing"


def test_the_reason_travels_in_the_document():
    written = Heartbeat.now(host="primary", target="mirror", clock=lambda: T, state="degraded",
                            reason="source up: deletes held")
    assert parse(written.to_json()).reason == "source up: deletes held"
    old = {"version": 1, "time": "2027-01-15T08:00:00.000Z", "host": "p", "state": "in_sync"}
    assert parse(json.dumps(old).encode()).reason == ""


def _measurement(h: Heartbeat) -> readiness.Measurement:
    reading = replica.Reading("127.0.0.1:5432/x", None, "not measured here")
    return readiness.Measurement(reading, h, "", (), T)


def _config(tmp_path):
    """A mirror host's config: a local heartbeat target and a symlink switch."""
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n"
                   f"[target:mirror]\ntype = local\npath = {tmp_path / 'mirror'}\n"
                   "[failover]\ndatabase = host=127.0.0.1 dbname=x\nheartbeat_target = mirror\n"
                   f"link = {tmp_path / 'active.php'}\nreadonly = {tmp_path / 'ro.php'}\n"
                   f"readwrite = {tmp_path / 'rw.php'}\n")
    ini.chmod(0o600)
    return load(ini)


def test_ready_judges_the_state_with_the_same_rule(tmp_path):
    """/ready (readiness.judge): a warning by default, as pending is; strict (FAIL, not
    ready) when the request gives max_heartbeat_age."""
    cfg = _config(tmp_path)
    m = _measurement(hb(state="degraded", reason="source up: deletes held"))
    lax = {c.name: c for c in readiness.judge(m, cfg, now=T)}["heartbeat.state"]
    assert lax.status == "WARN" and "deletes held" in lax.message
    strict = {c.name: c for c in readiness.judge(m, cfg, now=T, max_heartbeat_age=30)}
    assert strict["heartbeat.state"].status == "FAIL" and strict["heartbeat.state"].refuses


def test_once_switched_only_what_says_the_primary_is_gone_becomes_a_warning(tmp_path):
    """After a failover here, the replica unreachable (the mirror's own PostgreSQL
    stopped) or the mirror root missing kept /ready 200 (every refusing check was made
    a warning: a breaker); a stale heartbeat, the primary's absence, stay warnings."""
    from dataclasses import replace as dc_replace
    cfg = _config(tmp_path)
    switched = {"action": "failover", "at": "2027-01-15T08:00:00Z", "config": "ro.php"}
    stale = dc_replace(_measurement(hb(state="in_sync")), switched=switched)
    down = {c.name: c for c in readiness.judge(stale, cfg, now=T + 3600)}
    assert down["replica.connect"].refuses                   # its database: cannot serve
    assert not readiness.ready(list(down.values()))
    assert down["heartbeat.age"].status == "WARN"            # the primary's heartbeat stopped
    gone = dc_replace(stale, heartbeat=None, heartbeat_error="MirrorRootMissing: root gone")
    checks = readiness.judge(gone, cfg, now=T)
    assert any(c.refuses and c.name.startswith("heartbeat.") for c in checks)
