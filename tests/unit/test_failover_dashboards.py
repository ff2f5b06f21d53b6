"""The shipped alert rules and Grafana dashboard (deploy/): promtool accepts the rules, and
every metric they name is one mirrord exports (the daemon's or `mirrord health`'s)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from mirrord.config import load
from mirrord.health.service import Health
from mirrord.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "mirrord-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "mirrord-dashboard.json"
NAME = re.compile(r"\bmirrord_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                                                              "_created"), "gauge": ("",)}


def exported(registry) -> set[str]:
    """Every sample name a registry can produce, also for label sets not yet set."""
    names = set()
    for family in registry.collect():
        names |= {s.name for s in family.samples}
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def health_registry(tmp_path):
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path}/state\n\n[failover]\n"
                   "database = host=127.0.0.1 dbname=wiki\nmode = flagfile\n"
                   f"flag = {tmp_path}/ro\n")
    return Health(load(ini), measure=lambda: None).registry


def expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dash = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    return exprs


def test_promtool_accepts_the_rules():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/install-system-deps.sh installs prometheus"
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_metric_named_is_exported(tmp_path):
    known = exported(Metrics().registry) | exported(health_registry(tmp_path))
    named = {name for expr in expressions() for name in NAME.findall(expr)}
    assert named, "no metric found: the extraction is broken"
    assert named - known == set()


def test_the_check_catches_an_unknown_metric(tmp_path):
    known = exported(Metrics().registry) | exported(health_registry(tmp_path))
    assert "mirrord_replica_lag_seconds" not in known      # a plausible typo
    assert "mirrord_ready" in known and "mirrord_operations_total" in known


def test_both_hosts_are_covered():
    names = {name for expr in expressions() for name in NAME.findall(expr)}
    assert {"mirrord_ready", "mirrord_replica_replay_lag_seconds",
            "mirrord_mirror_heartbeat_age_seconds", "mirrord_oldest_pending_seconds",
            "mirrord_inotify_overflows_total", "mirrord_reconcile_last_run_timestamp_seconds",
            "mirrord_target_state", "mirrord_replication_lag_seconds"} <= names


def test_not_in_sync_alert_is_on_the_named_state():
    rules = yaml.safe_load(RULES.read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"]
                if r["alert"] == "MirrordTargetNotInSync")
    assert 'mirrord_target_state{state="in_sync"} == 0' in rule["expr"]
    assert rule["for"] == "5m"


def test_dashboard_shows_state_and_lag_per_target():
    panels = {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}
    assert panels["Target state"]["targets"][0]["expr"] == "mirrord_target_state == 1"
    assert panels["Replication lag per target"]["targets"][0]["expr"] == \
        "mirrord_replication_lag_seconds"
    ids = [p["id"] for p in panels.values()]
    assert len(ids) == len(set(ids)) == len(json.loads(DASHBOARD.read_text())["panels"])


def test_deletes_alarm_and_trash_are_covered():
    """Issue 17: the mass-change alarm pages, held deletes warn, and the dashboard shows the
    alarm per source and the trash per target (the rules' behaviour: test_deletion_alerts.py)."""
    rules = yaml.safe_load(RULES.read_text())
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert by_name["MirrordMassChangeAlarm"]["labels"]["severity"] == "critical"
    assert "Recovering from a mistake on the primary" in \
        by_name["MirrordMassChangeAlarm"]["annotations"]["runbook"]
    assert by_name["MirrordDeletesHeld"]["for"] == "30m"
    assert by_name["MirrordDeletesHeld"]["labels"]["severity"] == "warning"
    panels = {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}
    alarm = [t["expr"] for t in panels["Mass-change alarm per source"]["targets"]]
    assert alarm == ["mirrord_mass_change_alarm", "mirrord_deletes_held"]
    trash = panels["Trash size per target"]
    assert trash["targets"][0]["expr"] == "mirrord_trash_bytes"
    assert trash["fieldConfig"]["defaults"]["unit"] == "bytes"
    names = {name for expr in expressions() for name in NAME.findall(expr)}
    assert {"mirrord_trash_files", "mirrord_trash_bytes", "mirrord_trash_oldest_timestamp_seconds",
            "mirrord_trash_purged_total", "mirrord_mass_change_alarm",
            "mirrord_mass_changes_in_window", "mirrord_mass_change_alarms_total",
            "mirrord_deletes_held"} <= names
