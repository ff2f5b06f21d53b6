"""Secret values masked by value: in a command's output, in everything the CLI prints.

Before: a hook or reload_command that printed its own password (`echo $DB_PASSWORD`,
`printf '%s\\n' --password x`) had it shown in clear, though the command line itself was
shown masked; the " | " joining its output lines was taken for the value of a
`--password` that ended a line; the CLI's own prints (reconcile's errors, a JSON summary)
never passed through redact at all; a memcached address with user:password@ or
`--password x` was repeated in its config error.
"""

from __future__ import annotations

import io
import json

import pytest

from mirrord import logsetup
from mirrord.cli import output
from mirrord.config.cmdline import command_secrets, shown_output
from mirrord.config.failover import parse_memcached_server
from mirrord.logsetup import redact


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    """register_secret into registries of this test only."""
    monkeypatch.setattr(logsetup, "_extra_secrets", set())
    monkeypatch.setattr(logsetup, "_short_secrets", {})


@pytest.mark.parametrize("command, expected", [
    ('/usr/bin/printf "%s\\n" --password HOOKSECRET5', ["HOOKSECRET5"]),
    ("env DB_PASSWORD=HOOKSECRET6 /bin/sh -c 'echo \"$DB_PASSWORD\"'", ["HOOKSECRET6"]),
    ("env MYAPP_TOKEN=HOOKSECRET1 sh -c 'echo pre $MYAPP_TOKEN'", ["HOOKSECRET1"]),
    ("curl -u bob:PW123x https://al:PW9x@h/", ["PW123x", "al:PW9x", "PW9x"]),
    ("sshpass -p SPWx ssh -p 22 h", ["SPWx"]),
    ("ssh -o \"ProxyCommand=sh -c 'echo --password SSHTOK1 >&2'\"", ["SSHTOK1"]),
    ("host=h port=5 user=rep password=PGSECRET456 dbname=wiki", ["PGSECRET456"]),
    ("/bin/echo reload now", []),
])
def test_command_secrets_are_the_values_shown_command_masks(command, expected):
    assert command_secrets(command) == expected


def test_a_command_that_prints_its_own_secret_shows_it_masked():
    command = "env DB_PASSWORD=HOOKSECRET6 /bin/sh -c 'echo \"db pw is $DB_PASSWORD\"'"
    assert shown_output("db pw is HOOKSECRET6\nHOOKSECRET6\n", command) == "db pw is *** | ***"
    assert "HOOKSECRET6" not in redact("later, in any text: HOOKSECRET6")   # registered


def test_a_password_flag_ending_a_line_does_not_eat_the_separator():
    command = '/usr/bin/printf "%s\\n" --password HOOKSECRET5'
    assert shown_output("--password\nHOOKSECRET5\n", command) == "--password | ***"
    assert redact("--password | x") == "--password | x"          # a separator is no value
    assert redact("--password x | y") == "--password *** | y"


def test_every_line_written_to_the_cli_streams_is_redacted():
    raw = io.StringIO()
    stream = output.RedactingStream(raw)
    print("cannot connect: proxy auth --password", "SSHTOK1", "failed", file=stream)
    stream.write("a partial https://u:pw@h/")
    assert raw.getvalue() == "cannot connect: proxy auth --password *** failed\n"
    stream.flush()
    assert raw.getvalue().endswith("a partial https://***@h/")


def test_print_json_redacts_strings_and_stays_json(monkeypatch):
    raw = io.StringIO()
    monkeypatch.setattr("sys.stdout", output.RedactingStream(raw))
    output.print_json({"a": "s3://bucket", "b": "x@y --password SSHTOK1"}, sort_keys=True)
    doc = json.loads(raw.getvalue())
    assert doc == {"a": "s3://bucket", "b": "x@y --password ***"}


@pytest.mark.parametrize("item", ["admin:MEMSECRET99@127.0.0.1:11211",
                                  "127.0.0.1:11211 --password MEMSECRET98",
                                  "memcached://u:MEMSECRET97@h:1"])
def test_a_memcached_address_with_a_credential_is_refused_without_repeating_it(item):
    with pytest.raises(ValueError) as info:
        parse_memcached_server(item)
    message = str(info.value)
    assert "MEMSECRET" not in message and "brackets" not in message, message
    assert "not supported" in message


def test_a_path_is_shown_as_named_but_a_registered_secret_is_still_masked(capsys):
    """Verbatim and print_data: user data (a file's path) is not rewritten by the patterns,
    while a credential mirrord read (register_secret) is masked even there."""
    from mirrord.cli.output import print_data  # noqa: PLC0415
    from mirrord.logsetup import Verbatim, register_secret
    register_secret("Verb4timSecret")
    output.print_json({"path": Verbatim("password=abc123.jpg"), "error": "password=abc123",
                "other": Verbatim("dir/Verb4timSecret.jpg")})
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"path": "password=abc123.jpg", "error": "password=***",
                   "other": "dir/***.jpg"}
    print_data("  x --token 12345.jpg  Verb4timSecret")
    assert capsys.readouterr().out == "  x --token 12345.jpg  ***\n"
