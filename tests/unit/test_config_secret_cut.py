"""A credential holding " ;" (which starts an inline comment in the INI file) is a config
error naming file, section and key, never shown, instead of a secret silently cut short
and found later as SignatureDoesNotMatch or a refused login (a breaker)."""

from __future__ import annotations

import pytest

from mirrord import config
from mirrord.errors import ConfigError

SECRET = "wJalr ;XUtnFEMI"


def _ini(tmp_path, target_lines: str, extra: str = "") -> str:
    (tmp_path / "src").mkdir(exist_ok=True)
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n\n"
                   f"[source:up]\npath = {tmp_path / 'src'}\ntargets = t\n\n"
                   f"[target:t]\n{target_lines}\n{extra}")
    ini.chmod(0o600)
    return str(ini)


def test_an_s3_secret_cut_by_a_comment_is_refused_unshown(tmp_path):
    ini = _ini(tmp_path, "type = s3\nbucket = b\nendpoint_url = http://127.0.0.1:1\n"
                         f"access_key_id = AKIA\nsecret_access_key = {SECRET}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(ini)
    text = str(caught.value)
    assert "[target:t]" in text and "secret_access_key" in text and "starts a comment" in text
    assert "wJalr" not in text and "XUtnFEMI" not in text


def test_a_conninfo_password_cut_by_a_comment_is_refused(tmp_path):
    ini = _ini(tmp_path, f"type = local\npath = {tmp_path / 'm'}\n",
               "\n[failover]\ndatabase = host=127.0.0.1 password=ab ;cd\n")
    with pytest.raises(ConfigError) as caught:
        config.load(ini)
    assert "[failover]" in str(caught.value) and "database" in str(caught.value)
    assert "passfile" in str(caught.value) and "ab ;cd" not in str(caught.value)


def test_a_comment_after_an_ordinary_key_is_still_a_comment(tmp_path):
    ini = _ini(tmp_path, f"type = local\npath = {tmp_path / 'm'} ; the mirror disk\n")
    assert str(config.load(ini).targets["t"].local.path) == str(tmp_path / "m")


@pytest.mark.parametrize("section,line,key", [
    ("health", "interval = 0", "interval"), ("health", "interval = 0s", "interval"),
    ("failover", "memcached = ,", "memcached"), ("failover", "memcached = , ,", "memcached")])
def test_values_that_name_nothing_are_refused(tmp_path, section, line, key):
    """Two breakers: `[health] interval = 0` (a measuring loop without a pause) and
    `memcached = ,` (taken as no server: the flush silently skipped) were accepted."""
    ini = _ini(tmp_path, f"type = local\npath = {tmp_path / 'm'}\n",
               f"\n[{section}]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        config.load(ini)
    assert any(p.section == section and p.key == key for p in caught.value.problems), caught.value
