"""The shipped alert rules for the mass-change alarm and the trash (deploy/prometheus/,
group mirrord-deletes), run by `promtool test rules` against made-up series: each alert
fires when it should, with the labels and value an operator sees, and stays quiet when
it should not (promtool's unit-test format: prometheus.io/docs/prometheus/latest/
configuration/unit_testing_rules/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "mirrord-alerts.yml"
WEB = {"instance": "web1:9464", "job": "mirrord"}
RUNBOOK = 'mirrord README.md, section "Recovering from a mistake on the primary"'


def series(name: str, values: str, **labels: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in {**WEB, **labels}.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def promtool_test(tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/install-system-deps.sh installs prometheus"
    spec = tmp_path / "mirrord-alerts.test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m",
                                    "tests": tests}, sort_keys=False))
    return subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True,
                          text=True, timeout=60)


def rule(name: str) -> dict:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return next(r for g in groups for r in g["rules"] if r.get("alert") == name)


def firing(name: str, value: str, **labels: str) -> dict:
    """promtool's expectation for one firing alert: its labels and its annotations as the
    rule's templates render them (value: $value as the template prints it)."""
    r = rule(name)
    labels = {**WEB, **labels}

    def render(text: str) -> str:
        for key, v in labels.items():
            text = text.replace("{{ $labels.%s }}" % key, v)
        return text.replace("{{ $value | humanizeDuration }}", value).replace("{{ $value }}", value)

    return {"exp_labels": {**r["labels"], **labels},
            "exp_annotations": {k: render(v) for k, v in r["annotations"].items()}}


def alarm_firing(source: str, value: str) -> dict:
    return firing("MirrordMassChangeAlarm", value, source=source)


def test_mass_change_alarm_pages_with_the_peak_count(tmp_path):
    """A burst seen by a scrape (gauge 1) pages at once, and for 10 minutes after."""
    test = {
        "interval": "1m",
        "input_series": [
            series("mirrord_mass_change_alarm", "0 0 1 1 0x30", source="images"),
            series("mirrord_mass_changes_in_window", "0 10 1500 1200 3 0x30", source="images"),
            series("mirrord_mass_change_alarms_total", "0 0 1x33", source="images"),
            # a quiet source next to it never alarms
            series("mirrord_mass_change_alarm", "0x34", source="docs"),
            series("mirrord_mass_changes_in_window", "5x34", source="docs"),
            series("mirrord_mass_change_alarms_total", "0x34", source="docs"),
        ],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "MirrordMassChangeAlarm", "exp_alerts": []},
            {"eval_time": "3m", "alertname": "MirrordMassChangeAlarm",
             "exp_alerts": [alarm_firing("images", "1500")]},
            {"eval_time": "25m", "alertname": "MirrordMassChangeAlarm", "exp_alerts": []},
        ],
    }
    result = promtool_test(tmp_path, [test])
    assert result.returncode == 0, result.stdout + result.stderr
    assert rule("MirrordMassChangeAlarm")["annotations"]["runbook"] == RUNBOOK


def test_mass_change_alarm_a_scrape_missed_still_pages(tmp_path):
    """The gauge was 1 only between two scrapes; the counter's increase still pages."""
    test = {
        "interval": "1m",
        "input_series": [
            series("mirrord_mass_change_alarm", "0x20", source="images"),
            series("mirrord_mass_changes_in_window", "0 0 0 400 0x16", source="images"),
            series("mirrord_mass_change_alarms_total", "2 2 2 3x17", source="images"),
        ],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "MirrordMassChangeAlarm",
             "exp_alerts": [alarm_firing("images", "400")]},
        ],
    }
    result = promtool_test(tmp_path, [test])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_test_catches_a_wrong_expectation(tmp_path):
    """The harness is not vacuous: an alert expected where the series give none fails."""
    test = {
        "interval": "1m",
        "input_series": [series("mirrord_mass_change_alarm", "0x10", source="images"),
                         series("mirrord_mass_changes_in_window", "0x10", source="images"),
                         series("mirrord_mass_change_alarms_total", "0x10", source="images")],
        "alert_rule_test": [{"eval_time": "5m", "alertname": "MirrordMassChangeAlarm",
                             "exp_alerts": [alarm_firing("images", "0")]}],
    }
    result = promtool_test(tmp_path, [test])
    assert result.returncode != 0
    assert "MirrordMassChangeAlarm" in result.stdout + result.stderr


def test_deletes_held_warns_after_30_minutes(tmp_path):
    test = {
        "interval": "1m",
        "input_series": [series("mirrord_deletes_held", "0 1x45", source="images"),
                         series("mirrord_deletes_held", "0x45", source="docs")],
        "alert_rule_test": [
            {"eval_time": "20m", "alertname": "MirrordDeletesHeld", "exp_alerts": []},
            {"eval_time": "40m", "alertname": "MirrordDeletesHeld",
             "exp_alerts": [firing("MirrordDeletesHeld", "1", source="images")]},
        ],
    }
    result = promtool_test(tmp_path, [test])
    assert result.returncode == 0, result.stdout + result.stderr


def test_trash_retention_behind_warns_only_past_the_threshold(tmp_path):
    """Times are promtool's: the test starts at Unix time 0. A trash whose oldest entry
    stays at t=1 is 9 days old at 9d; one purged as it goes stays fresh; an empty trash
    (oldest 0) never alarms."""
    test = {
        # 5m: within Prometheus' 5-minute lookback, so the series never goes stale
        "interval": "5m",
        "input_series": [
            series("mirrord_trash_oldest_timestamp_seconds", "1x2880", target="stuck"),
            series("mirrord_trash_oldest_timestamp_seconds", "0+300x2880", target="purged"),
            series("mirrord_trash_oldest_timestamp_seconds", "0x2880", target="empty"),
        ],
        "alert_rule_test": [
            {"eval_time": "7d", "alertname": "MirrordTrashRetentionBehind", "exp_alerts": []},
            {"eval_time": "9d", "alertname": "MirrordTrashRetentionBehind",
             "exp_alerts": [firing("MirrordTrashRetentionBehind", "8d 23h 59m 59s",
                                   target="stuck")]},
        ],
    }
    result = promtool_test(tmp_path, [test])
    assert result.returncode == 0, result.stdout + result.stderr
