"""Operating the real daemon: metrics endpoint, systemd notify protocol, damaged state."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mirrord.targets.local import LocalTarget
from tests.e2e.helpers import MIRRORD, Mirrord, wait_converged
from tests.e2e.test_exchange_in_flight import exchange


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path, extra: str = "") -> os.PathLike:
    (tmp_path / "src").mkdir(exist_ok=True)
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = ./state
heartbeat_interval = 200ms
{extra}
[source:s]
path = ./src
targets = t
[target:t]
type = local
path = ./dst
""")
    return cfg


def _scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def test_metrics_endpoint_counts_shipped_files(tmp_path):
    port = _free_port()
    cfg = _config(tmp_path, f"metrics_listen = 127.0.0.1:{port}")
    daemon = Mirrord(cfg, tmp_path / "log").start()
    try:
        for i in range(10):
            (tmp_path / "src" / f"f{i}").write_text(str(i))
        wait_converged(tmp_path / "src", LocalTarget("t", tmp_path / "dst"))
        # Gauges are refreshed by the main loop, a moment after the files arrive: poll for
        # the whole picture (bounded), then say which part is missing.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = _scrape(port)
            if m.get("mirrord_operations_total{kind=put,outcome=shipped,target=t}", 0) >= 10 \
                    and "mirrord_heartbeat_age_seconds{target=t}" in m \
                    and m.get("mirrord_pending_operations{target=t}") == 0:
                break
            time.sleep(0.2)
        assert m["mirrord_operations_total{kind=put,outcome=shipped,target=t}"] >= 10
        assert m["mirrord_replication_latency_seconds_count{target=t}"] >= 10
        assert m["mirrord_pending_operations{target=t}"] == 0
        assert m["mirrord_watched_directories{}"] >= 1
        assert m["mirrord_heartbeat_age_seconds{target=t}"] < 30
        # counters that count rare events are there at 0 from the start (their first
        # increase() is seen): the source's alarms, each main-loop step's errors
        assert m["mirrord_mass_change_alarms_total{source=s}"] == 0
        assert m["mirrord_cycle_errors_total{step=read watchers}"] == 0
        assert m["mirrord_cycle_errors_total{step=dispatch}"] == 0
        # every step and hook by its name, the same at every start: an instance's repr
        # (`<...ClaimWatch object at 0x7f...>`) made new series at each restart (a trial)
        steps = [k for k in m if k.startswith("mirrord_cycle_errors_total{")]
        assert steps and not [k for k in steps if " at 0x" in k or "<" in k], steps
        assert "mirrord_cycle_errors_total{step=hook ClaimWatch}" in m, steps
    finally:
        assert daemon.stop() == 0


def test_daemon_live_and_ready_follow_the_target_state(tmp_path):
    """The primary's endpoint answers /live and /ready: 200 once every target is in_sync,
    503 with the target's state while a target cannot be reached, and back."""
    import json
    import urllib.error
    import urllib.request

    def get(path: str) -> tuple[int, object]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    port = _free_port()
    cfg = _config(tmp_path, f"metrics_listen = 127.0.0.1:{port}")
    daemon = Mirrord(cfg, tmp_path / "log").start()
    dst, aside = tmp_path / "dst", tmp_path / "dst-aside"
    try:
        (tmp_path / "src" / "a.jpg").write_text("a")
        wait_converged(tmp_path / "src", LocalTarget("t", tmp_path / "dst"))
        deadline = time.monotonic() + 30
        while get("/ready")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, body = get("/ready")
        assert status == 200, body
        assert get("/live")[0] == 200
        hb = json.loads((tmp_path / "dst" / ".mirrord" / "heartbeat.json").read_text())
        deadline = time.monotonic() + 30
        while hb.get("state") != "in_sync" and time.monotonic() < deadline:
            time.sleep(0.2)
            hb = json.loads((tmp_path / "dst" / ".mirrord" / "heartbeat.json").read_text())
        assert hb["state"] == "in_sync"
        shown = json.loads(daemon.cli("status", "--json").stdout)
        assert shown["targets"]["t"]["state"] == "in_sync"
        aside.write_text("not a directory")      # the target's root is now a file: every
        exchange(dst, aside)                     # write fails and is retried (one atomic
        # swap: a rename then a write raced the daemon making the root again, IsADirectoryError)
        (tmp_path / "src" / "b.jpg").write_text("b")
        deadline = time.monotonic() + 30
        while get("/ready")[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, body = get("/ready")
        assert status == 503, body
        exchange(dst, aside)
        deadline = time.monotonic() + 120
        while get("/ready")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert get("/ready")[0] == 200
    finally:
        if aside.is_dir():
            exchange(dst, aside)
        assert daemon.stop() == 0


def test_a_target_no_source_lists_is_not_reported_in_sync(tmp_path):
    """A [target:*] section no source lists is never opened: /ready, mirrord_target_state and
    status must not call it in_sync (it mirrors nothing), and it must not hold /ready at 503."""
    import json

    port = _free_port()
    cfg = _config(tmp_path, f"metrics_listen = 127.0.0.1:{port}")
    cfg.write_text(cfg.read_text() + "[target:spare]\ntype = local\npath = ./spare\n")
    daemon = Mirrord(cfg, tmp_path / "log").start()
    try:
        (tmp_path / "src" / "a.jpg").write_text("a")
        wait_converged(tmp_path / "src", LocalTarget("t", tmp_path / "dst"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as resp:
                    status, doc = resp.status, json.loads(resp.read())
                break
            except urllib.error.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("/ready never answered 200")
        assert status == 200 and set(doc["targets"]) == {"t"}, doc
        states = {k for k in _scrape(port) if k.startswith("mirrord_target_state{")}
        assert states and not any("target=spare" in k for k in states), states
        shown = json.loads(daemon.cli("status", "--json").stdout)["targets"]
        assert shown["t"]["state"] == "in_sync" and shown["spare"]["state"] == "unused", shown
        assert not (tmp_path / "spare").exists()
    finally:
        assert daemon.stop() == 0


def test_systemd_notify_ready_and_watchdog(tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(30)
    cfg = _config(tmp_path)
    daemon = Mirrord(cfg, tmp_path / "log",
                     env={"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000"})
    daemon.start()
    try:
        messages: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ("READY=1" in messages and "WATCHDOG=1" in messages):
            messages.extend(sock.recv(4096).decode().split("\n"))
        assert "READY=1" in messages and "WATCHDOG=1" in messages
    finally:
        assert daemon.stop() == 0
        sock.close()


def test_damaged_journal_refuses_to_start(tmp_path):
    cfg = _config(tmp_path)
    daemon = Mirrord(cfg, tmp_path / "log").start()
    (tmp_path / "src" / "a").write_text("a")
    wait_converged(tmp_path / "src", LocalTarget("t", tmp_path / "dst"))
    assert daemon.stop() == 0
    db = tmp_path / "state" / "journal.db"
    data = bytearray(db.read_bytes())
    assert len(data) > 4096
    data[100:4096 * 2] = os.urandom(4096 * 2 - 100)   # header and first pages destroyed
    db.write_bytes(bytes(data))
    res = subprocess.run([MIRRORD, "-c", str(cfg), "run"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2   # an unusable state database: the operator fixes it (exit 2)
    assert "damaged" in res.stderr and "refusing to start" in res.stderr
    assert "Traceback" not in res.stderr
    assert db.read_bytes() == bytes(data)   # never silently replaced by an empty journal


@pytest.mark.parametrize("value", ["../escape", ".mirrord"])
def test_dest_that_escapes_is_a_config_error(tmp_path, value):
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace("targets = t", f"targets = t\ndest = {value}"))
    res = subprocess.run([MIRRORD, "-c", str(cfg), "check-config"], capture_output=True, text=True)
    assert res.returncode == 2 and "[source:s] dest" in res.stderr


def test_renames_arrive_as_renames_not_copies(tmp_path):
    """On a local target a rename keeps the inode; a re-upload would make a new file."""
    cfg = _config(tmp_path)
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "dir" / "sub" / "file.bin").write_bytes(os.urandom(4096))
    (src / "single.bin").write_bytes(os.urandom(4096))
    daemon = Mirrord(cfg, tmp_path / "log").start()
    try:
        target = LocalTarget("t", dst)
        wait_converged(src, target)
        file_ino = (dst / "single.bin").stat().st_ino
        dir_ino = (dst / "dir").stat().st_ino
        inner_ino = (dst / "dir" / "sub" / "file.bin").stat().st_ino
        (src / "single.bin").rename(src / "renamed.bin")
        (src / "dir").rename(src / "moved-dir")
        wait_converged(src, target)
        assert (dst / "renamed.bin").stat().st_ino == file_ino
        assert (dst / "moved-dir").stat().st_ino == dir_ino
        assert (dst / "moved-dir" / "sub" / "file.bin").stat().st_ino == inner_ino
    finally:
        assert daemon.stop() == 0


def test_scheduled_reconcile_repairs_drift_on_the_target(tmp_path):
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text() + "\n[reconcile]\nevery = 1s\ndelete = yes\n")
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(5):
        (src / f"f{i}").write_text(str(i))
    daemon = Mirrord(cfg, tmp_path / "log").start()
    try:
        target = LocalTarget("t", dst)
        wait_converged(src, target)
        (dst / "f0").unlink()                      # lost on the mirror
        (dst / "f1").write_text("changed by hand")  # changed on the mirror
        (dst / "stray").write_text("not at the source")
        wait_converged(src, target, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            last = daemon.status()["targets"]["t"]["last_reconcile"]
            if last and last.get("reason") == "schedule":
                break
            time.sleep(0.2)
        assert last["reason"] == "schedule" and last["compared"] >= 5
    finally:
        assert daemon.stop() == 0
