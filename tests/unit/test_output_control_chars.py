"""Control characters from outside mirrord are escaped in everything printed for a human.

Before: a hook's output, a heartbeat's reason or a server's message reached the
terminal with its ESC sequences raw (the screen cleared, text recoloured), and a
password split by `\\e[0m` or `\\r` was shown whole while the redaction, matching the
raw text, saw none. Now the CLI's streams (output.RedactingStream, every command's
stdout and stderr), failover's report and the text log escape every control character
but tab and newline as `\\xNN`, and a credential split by control characters is masked.
"""

from __future__ import annotations

import io
import logging

import pytest

from mirrord import logsetup
from mirrord.cli import output
from mirrord.config.cmdline import shown_output

SECRET = "pw-Zq81-secret"


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    """register_secret into registries of this test only."""
    monkeypatch.setattr(logsetup, "_extra_secrets", set())
    monkeypatch.setattr(logsetup, "_short_secrets", {})
    logsetup.register_secret(SECRET)


@pytest.mark.parametrize("text, shown", [
    ("\x1b[2J\x1b[32mall fine\x1b[0m", "\\x1b[2J\\x1b[32mall fine\\x1b[0m"),
    ("bell\x07 nul\x00 del\x7f csi\x9b", "bell\\x07 nul\\x00 del\\x7f csi\\x9b"),
    ("back\rspace\x08", "back\\x0dspace\\x08"),
    ("tab\tkept", "tab\tkept"),
    ("db pw-Zq81-\x1b[0msecret", "db ***"),
    ("cr pw-Zq81-\rsecret", "cr ***"),
    ("osc \x1b]0;title\x07pw-Zq81-\x1b[1msecret", "osc ***"),
    ("a backslash \\x1b stays", "a backslash \\x1b stays"),
])
def test_shown_line(text, shown):
    assert logsetup.shown_line(text) == shown


def test_the_cli_streams_escape_each_line_keeping_newlines():
    raw = io.StringIO()
    stream = output.RedactingStream(raw)
    stream.write("one \x1b[31mred\x1b[0m\ntwo pw-Zq81-\x1b[0msecret\nthree \x1b[2J")
    stream.flush()
    assert raw.getvalue() == ("one \\x1b[31mred\\x1b[0m\ntwo ***\nthree \\x1b[2J")


def test_a_commands_output_keeps_a_password_split_by_cr_on_one_line():
    # splitlines() took \r for a line end: `pw-Zq81- | secret`, each half clean
    shown = shown_output("cr pw-Zq81-\rsecret\nnext line\n", "/bin/true")
    assert shown == "cr *** | next line"
    assert "secret" not in shown


def test_the_text_log_escapes_control_characters():
    record = logging.LogRecord("mirrord.test", logging.WARNING, __file__, 1, "hook said %s",
                               ("\x1b[2Jcleared pw-Zq81-\x1b[0msecret",), None)
    line = logsetup._TextFormatter().format(record)
    assert "\x1b" not in line
    assert "hook said cleared ***" in line
