"""Credentials never shown: a short registered secret, a credential inside a command line
(a hook, reload_command, ssh_command), a URL's userinfo under one rule.

Before: register_secret ignored a secret under 4 characters (a 3-character password was
printed in clear); `curl -u admin:s3cret`, `--password s3cret` and a token-only URL
userinfo passed redact untouched; check-config printed hook and ssh command lines as
written; shown_url and redact masked a URL's userinfo by two different rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirrord import logsetup
from mirrord.config import load
from mirrord.config.addresses import shown_url
from mirrord.config.values import parse_command, shown_command
from mirrord.logsetup import redact, register_secret

MARK = "Mk-5e1f"


@pytest.fixture
def secrets(monkeypatch):
    """register_secret into registries of this test only."""
    monkeypatch.setattr(logsetup, "_extra_secrets", set())
    monkeypatch.setattr(logsetup, "_short_secrets", {})
    return register_secret


# ------------------------------------------------------------------ short secrets


@pytest.mark.parametrize("text, expected", [
    ("Qz9", "***"),                                          # the whole text (a JSON field)
    ("invalid value 'Qz9' for x", "invalid value '***' for x"),
    ('json {"pw": "Qz9"}', 'json {"pw": "***"}'),
    ("psql://app:Qz9@db/wiki", "psql://***@db/wiki"),
    ("ssh app:Qz9@db", "ssh app:***@db"),                    # userinfo without a scheme
])
def test_a_short_secret_is_masked_as_a_whole_credential_field(secrets, text, expected):
    secrets("Qz9")
    assert redact(text) == expected


@pytest.mark.parametrize("text", ["a file at a/b", "Qz9x and xQz9", "version 1.2.3",
                                  "Qz9: not quoted"])
def test_a_short_secret_leaves_ordinary_text_alone(secrets, text):
    secrets("a")
    secrets("Qz9")
    secrets("1.2")
    assert redact(text) == text


def test_a_long_secret_is_still_masked_anywhere(secrets):
    secrets("s3cretvalue")
    assert redact("xx s3cretvalueyy") == "xx ***yy"


# ------------------------------------------------------ credentials in command lines


@pytest.mark.parametrize("command, shown", [
    (f"curl -u admin:{MARK} http://127.0.0.1/reload", "curl -u 'admin:***' http://127.0.0.1/reload"),
    (f"curl --user 'admin:{MARK} x' http://h/", "curl --user 'admin:***' http://h/"),
    (f"curl -uadmin:{MARK} http://h/", "curl '-uadmin:***' http://h/"),
    (f"curl --proxy-user=p:{MARK} http://h/", "curl '--proxy-user=p:***' http://h/"),
    (f"curl http://admin:{MARK}@h/reload", "curl 'http://***@h/reload'"),
    (f"curl https://{MARK}@h/hook", "curl 'https://***@h/hook'"),
    (f"env PGPASSWORD={MARK} psql -c x", "env 'PGPASSWORD=***' psql -c x"),
    (f"env MYSQL_PWD={MARK} AWS_SECRET_ACCESS_KEY={MARK} x",
     "env 'MYSQL_PWD=***' 'AWS_SECRET_ACCESS_KEY=***' x"),
    (f"tool --password={MARK}", "tool '--password=***'"),
    (f"tool --password {MARK} --verbose", "tool --password '***' --verbose"),
    (f"tool --token '{MARK} with space'", "tool --token '***'"),
    (f"tool --api-key={MARK}", "tool '--api-key=***'"),
    (f"curl -H 'Authorization: Bearer {MARK}' http://h/", "curl -H 'Authorization: Bearer ***' http://h/"),
    (f"psql 'host=db password={MARK}'", "psql 'host=db password=***'"),
    # a program's own password flag, where the same flag elsewhere is a port or a database
    (f"sshpass -p {MARK} ssh -p 2222 app reload", "sshpass -p '***' ssh -p 2222 app reload"),
    (f"sshpass -p{MARK} ssh app reload", "sshpass '-p***' ssh app reload"),
    (f"/usr/bin/sshpass -v -p '{MARK} x' ssh h", "/usr/bin/sshpass -v -p '***' ssh h"),
    (f"redis-cli -h 127.0.0.1 -a {MARK} flushall", "redis-cli -h 127.0.0.1 -a '***' flushall"),
    (f"mysql -u root -p{MARK} -e flush", "mysql -u root '-p***' -e flush"),
    (f"sudo mariadb-admin -p{MARK} reload", "sudo mariadb-admin '-p***' reload"),
    (f"sh -c 'sshpass -p {MARK} ssh h reload'", "sh -c 'sshpass -p *** ssh h reload'"),
])
def test_a_credential_in_a_command_line_is_masked_where_it_is_shown(command, shown):
    assert shown_command(command) == shown
    assert MARK not in redact(command)       # the log's last line of defence agrees


@pytest.mark.parametrize("command", [
    "systemctl reload php8.2-fpm", "ssh -o StrictHostKeyChecking=no -p 2222",
    "sudo -u www-data /usr/local/bin/purge", "sh -c 'echo \"a b\"'", "mysql -u root",
    "/usr/local/sbin/wiki-vip up", "env PWD=/srv/www OLDPWD=/ make",
    "mysql -u root -p wiki", "scp -P 2222 -p a h:b", "rsync -p -a src/ h:dst/",
    "redis-cli -p 6380 ping",
])
def test_a_command_without_credentials_is_shown_as_written(command):
    assert shown_command(command) == command


def test_a_command_that_cannot_be_split_is_still_masked():
    assert shown_command(f"curl -u admin:{MARK} 'unclosed") == "curl -u admin:*** 'unclosed"


def test_an_environment_assignment_as_the_program_is_refused_without_its_value():
    """Run without a shell, `PGPASSWORD=x psql` is a program named "PGPASSWORD=x": it
    failed only when run (reload_command: after the flip) and printed its name."""
    with pytest.raises(ValueError) as info:
        parse_command(f"PGPASSWORD={MARK} psql -c 'select 1'")
    assert "put `env` before it" in str(info.value) and MARK not in str(info.value)
    assert parse_command(f"env PGPASSWORD={MARK} psql") == f"env PGPASSWORD={MARK} psql"


# ------------------------------------------------------------ one rule for URLs


@pytest.mark.parametrize("url", [f"http://admin:{MARK}@h/x", f"https://{MARK}@h/",
                                 f"http://u:{MARK}@with-at@h/", f"postgresql://u:{MARK}@db/wiki"])
def test_shown_url_and_redact_mask_a_userinfo_alike(url):
    assert shown_url(url) == redact(url)
    assert MARK not in shown_url(url) and "://***@" in shown_url(url)


def test_a_url_whose_port_is_bad_never_repeats_its_userinfo(tmp_path):
    """urlsplit's error came first and its message quoted the URL (masked by a second rule)."""
    from mirrord.config.addresses import parse_http_url

    with pytest.raises(ValueError) as info:
        parse_http_url(f"http://u:{MARK} x@h:99999/")
    assert "must not carry credentials" in str(info.value) and MARK not in str(info.value)


# ------------------------------------------------------------ check-config --json


def test_check_config_shows_hook_reload_and_ssh_commands_masked(tmp_path: Path):
    from mirrord.cli.check_config import summary

    ini = tmp_path / "m.ini"
    ini.write_text(f"""
[source:up]
path = src
targets = host
[target:host]
type = rsync
host = mirror.example
path = /srv/mirror
ssh_command = ssh -o SetEnv=API_TOKEN={MARK}
[failover]
database = host=db dbname=wiki
link = etc/active.php
readonly = etc/ro.php
readwrite = etc/rw.php
reload_command = curl -u admin:{MARK} http://127.0.0.1/reload
pre_failover = env PGPASSWORD={MARK} /usr/local/bin/pre
post_failover = notify --token {MARK}
""")
    doc = json.dumps(summary(load(ini)))
    assert MARK not in doc
    assert "curl -u 'admin:***'" in doc and "notify --token '***'" in doc
    assert "ssh -o 'SetEnv=API_TOKEN=***'" in doc
