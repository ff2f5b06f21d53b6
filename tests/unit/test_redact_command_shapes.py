"""Common credential shapes in a command line are masked wherever it is shown.

Before (a breaker): check-config printed `ssh_command=env SSHPASS=SSHsecretQw55 sshpass
-e ssh`, and the failover plan (`planned reload run ...`) and failover.log showed in clear
an environment assignment whose name holds PASS/TOKEN/SECRET/KEY/AUTH anywhere
(`SSHPASS=`, `REDISCLI_AUTH=`), a header whose name says it carries a secret (`-H
'X-Api-Key: x'`, `PRIVATE-TOKEN:`, `X-Auth-Token:`, `Cookie:`), a long option named for
its credential but not listed (`--oauth2-bearer x`, `wget --http-password x`,
`--proxy-password x`, `--client-secret x`), and openssl's `-passin pass:x`; a quoted
value holding a space (`PGPASSWORD='a b'`, `-H 'Authorization: Bearer a b'`) showed
what followed its first space.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirrord.config import load
from mirrord.config.values import command_secrets, shown_command
from mirrord.logsetup import redact

MARK = "Mk-7c3a"


@pytest.mark.parametrize("command, shown", [
    # environment assignments, the credential word anywhere in an upper-case name
    (f"env SSHPASS={MARK} sshpass -e ssh", "env 'SSHPASS=***' sshpass -e ssh"),
    (f"env PGPASSWORD={MARK} psql", "env 'PGPASSWORD=***' psql"),
    (f"env AWS_SECRET_ACCESS_KEY={MARK} aws s3 ls", "env 'AWS_SECRET_ACCESS_KEY=***' aws s3 ls"),
    (f"env MYSQL_PWD={MARK} mysql", "env 'MYSQL_PWD=***' mysql"),
    (f"env REDISCLI_AUTH={MARK} redis-cli", "env 'REDISCLI_AUTH=***' redis-cli"),
    (f"env VAULT_TOKEN_RO={MARK} x", "env 'VAULT_TOKEN_RO=***' x"),
    (f"env API_KEY_2={MARK} x", "env 'API_KEY_2=***' x"),
    (f"env RESTIC_PASSPHRASE={MARK} x", "env 'RESTIC_PASSPHRASE=***' x"),
    (f"env sshpass={MARK} x", "env 'sshpass=***' x"),
    (f"env PGPASSWORD='{MARK} b' psql", "env 'PGPASSWORD=***' psql"),
    # headers whose name says they carry a secret
    (f"curl -H 'X-Api-Key: {MARK}' http://h/", "curl -H 'X-Api-Key: ***' http://h/"),
    (f"curl -H 'PRIVATE-TOKEN: {MARK}' http://h/", "curl -H 'PRIVATE-TOKEN: ***' http://h/"),
    (f"curl -H 'X-Auth-Token:{MARK}' http://h/", "curl -H 'X-Auth-Token:***' http://h/"),
    (f"curl --header 'X-Vault-Token: {MARK}' h", "curl --header 'X-Vault-Token: ***' h"),
    (f"curl '--header=X-Api-Key: {MARK}' h", "curl '--header=X-Api-Key: ***' h"),
    (f"curl -H 'Cookie: session={MARK}' h", "curl -H 'Cookie: ***' h"),
    (f"curl -H 'Proxy-Authorization: Basic {MARK}' h", "curl -H 'Proxy-Authorization: Basic ***' h"),
    (f"curl -H 'X-Api-Key: {MARK} b' h", "curl -H 'X-Api-Key: ***' h"),
    (f"curl -H 'Authorization: Bearer {MARK} b' h", "curl -H 'Authorization: Bearer ***' h"),
    # long options named for their credential
    (f"curl --oauth2-bearer {MARK} http://h/", "curl --oauth2-bearer '***' http://h/"),
    (f"wget --http-password {MARK} http://h/", "wget --http-password '***' http://h/"),
    (f"wget --http-passwd {MARK} http://h/", "wget --http-passwd '***' http://h/"),
    (f"curl --proxy-password {MARK} h", "curl --proxy-password '***' h"),
    (f"tool --client-secret {MARK}", "tool --client-secret '***'"),
    (f"tool --passphrase {MARK}", "tool --passphrase '***'"),
    (f"tool --secret-key {MARK}", "tool --secret-key '***'"),
    (f"wget --http-password={MARK} http://h/", "wget '--http-password=***' http://h/"),
    # openssl's password arguments
    (f"openssl enc -d -passin pass:{MARK} -in f", "openssl enc -d -passin 'pass:***' -in f"),
    (f"openssl pkcs12 -passout 'pass:{MARK} b'", "openssl pkcs12 -passout 'pass:***'"),
    # curl's -u user:password
    (f"curl -u bob:{MARK} http://h/", "curl -u 'bob:***' http://h/"),
])
def test_each_credential_shape_is_masked(command, shown):
    assert shown_command(command) == shown
    assert MARK not in redact(command)               # the log's last line of defence agrees
    assert any(MARK in value for value in command_secrets(command))   # masked by value too


@pytest.mark.parametrize("command", [
    "ssh -o StrictHostKeyChecking=no -p 2222", "env GIT_AUTHOR_NAME=bob make",
    "psql --no-password -h db", "env PWD=/srv/www make", "openssl enc -passin env:PW -in f",
    "openssl enc -passin file:/etc/pw -in f", "curl -H 'Content-Type: application/json' h",
    "curl -H 'Accept: text/plain' h", "docker login --password-stdin -u bob",
    "env KEYRING_BACKEND= x",
])
def test_a_command_without_credentials_is_shown_as_written(command):
    assert shown_command(command) == command


def test_a_conninfo_password_still_ends_at_its_space():
    """libpq ends an unquoted conninfo value at a space: only `x` is the password."""
    assert shown_command("psql 'password=x dbname=wiki'") == "psql 'password=*** dbname=wiki'"
    assert command_secrets("psql 'password=x dbname=wiki'") == ["x"]


def _ini(tmp: Path) -> Path:
    (tmp / "etc").mkdir()
    (tmp / "src").mkdir()
    for name in ("ro.php", "rw.php"):
        (tmp / "etc" / name).write_text(name)
    (tmp / "etc" / "active.php").symlink_to("rw.php")
    ini = tmp / "m.ini"
    ini.write_text(f"""
[mirrord]
state_dir = {tmp / 'state'}
[source:up]
path = {tmp / "src"}
targets = host
[target:host]
type = rsync
host = mirror.example
path = /srv/mirror
ssh_command = env SSHPASS={MARK}1 sshpass -e ssh
[failover]
database = host=127.0.0.1 port=1 dbname=wiki
link = etc/active.php
readonly = etc/ro.php
readwrite = etc/rw.php
reload_command = env SSHPASS={MARK}2 sshpass -e ssh web1 curl -H "X-Api-Key: {MARK}3" -H "PRIVATE-TOKEN: {MARK}4" --oauth2-bearer {MARK}5 -u bob:{MARK}6 http://h/
post_failover = wget --http-password {MARK}7 http://h/
pre_failover = openssl enc -passin pass:{MARK}8 -in /dev/null
""")
    ini.chmod(0o600)
    return ini


def test_check_config_masks_the_breakers_ssh_command(tmp_path):
    from mirrord.cli.check_config import summary

    doc = json.dumps(summary(load(_ini(tmp_path))))
    assert MARK not in doc and "'SSHPASS=***' sshpass -e ssh" in doc


def test_check_config_text_masks_the_breakers_ssh_command(tmp_path, capsys):
    from mirrord.cli.check_config import summary
    from mirrord.cli.output import print_json

    print_json(summary(load(_ini(tmp_path))))           # what --json prints, raw stdout
    assert MARK not in capsys.readouterr().out


def test_the_failover_plan_and_failover_log_mask_every_shape(tmp_path, capsys):
    from mirrord.cli.dispatch import dispatch

    ini = _ini(tmp_path)
    (tmp_path / "state").mkdir(exist_ok=True)   # a dry run logs only where state_dir exists
    assert dispatch(["-c", str(ini), "failover", "--dry-run", "--force"]) in (0, 1, 3)
    out = capsys.readouterr()
    log = (tmp_path / "state" / "failover.log").read_text()
    for where, text in (("stdout", out.out), ("stderr", out.err), ("failover.log", log)):
        assert MARK not in text, f"{where}:\n{text}"
    plan = out.out.replace("'", "")
    for shown in ("SSHPASS=*** sshpass", "X-Api-Key: ***", "PRIVATE-TOKEN: ***",
                  "--oauth2-bearer ***", "-u bob:***", "--http-password ***", "pass:***"):
        assert shown in plan, plan
