"""[failover] hooks, check_url, max_clock_skew and the [health] section: parsed, or refused
with one message naming file, section and key."""

from __future__ import annotations

import pytest

from mirrord.config import HealthConfig, load
from mirrord.errors import ConfigError


def ini(tmp_path, failover: str = "", health: str | None = None):
    path = tmp_path / "mirrord.ini"
    text = (f"[mirrord]\nstate_dir = {tmp_path}/state\n\n[failover]\n"
            "database = host=127.0.0.1 dbname=wiki\nmode = flagfile\n"
            f"flag = {tmp_path}/ro\n{failover}\n")
    if health is not None:
        text += f"\n[health]\n{health}\n"
    path.write_text(text)
    return path


def problems(path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(path)
    return [str(p) for p in exc.value.problems]


def test_hooks_and_check_are_read(tmp_path):
    cfg = load(ini(tmp_path, "pre_failover = /usr/local/bin/vip 'up now'\nhook_timeout = 5s\n"
                             "check_url = http://127.0.0.1/api.php\ncheck_pattern = read.?only\n"
                             "max_clock_skew = 2s"))
    fo = cfg.failover
    assert fo.hook("pre_failover") == "/usr/local/bin/vip 'up now'" and fo.hook("post_failover") == ""
    assert (fo.hook_timeout, fo.max_clock_skew, fo.check_timeout) == (5.0, 2.0, 10.0)
    assert fo.check_url == "http://127.0.0.1/api.php" and fo.check_pattern == "read.?only"
    assert cfg.health == HealthConfig()


def test_bad_values_name_file_section_and_key(tmp_path):
    path = ini(tmp_path, "post_failback = /bin/echo 'unclosed\ncheck_url = ftp://x/\n"
                         "check_pattern = (\nhook_timeout = soon")
    found = problems(path)
    assert any(p.startswith(f"{path}: [failover] post_failback: cannot split") for p in found)
    assert any("[failover] check_url: must be an http:// or https:// URL" in p for p in found)
    assert any("[failover] check_pattern: not a regular expression" in p for p in found)
    assert any("[failover] hook_timeout: not a duration" in p for p in found)


def test_check_pattern_needs_check_url(tmp_path):
    assert any("[failover] check_pattern: needs check_url" in p
               for p in problems(ini(tmp_path, "check_pattern = readonly")))


def test_health_section(tmp_path):
    cfg = load(ini(tmp_path, health="listen = [::1]:9200\ninterval = 500ms"))
    assert cfg.health == HealthConfig(("::1", 9200), 0.5)
    found = problems(ini(tmp_path, health="listen = nowhere\nport = 1"))
    assert any("[health] listen: not host:port" in p for p in found)
    assert any("[health] port: unknown key" in p for p in found)
