"""logsetup's redactor on password= values: masked whole, and a key="..." field stays balanced."""

from __future__ import annotations

import json
import logging
import shlex

import pytest

from mirrord.logsetup import _JsonFormatter, _TextFormatter, kv, redact


def record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("mirrord", logging.WARNING, __file__, 1, msg, None, None)


@pytest.mark.parametrize("text, expected", [
    ("host=db password=s3cret dbname=wiki", "host=db password=*** dbname=wiki"),
    ("host=db password='a b c' dbname=wiki", "host=db password=*** dbname=wiki"),
    ("PASSWORD = s3cret", "PASSWORD = ***"),
    # the bug: \S+ took the closing quote with it, leaving conninfo="... unterminated
    ('conninfo="host=db password=s3cret"', 'conninfo="host=db password=***"'),
    ("dsn='password=s3cret'", "dsn='password=***'"),
])
def test_password_values_are_masked_up_to_a_quote(text, expected):
    assert redact(text) == expected


def test_a_kv_field_stays_parseable_after_redaction():
    line = redact(kv(msg="connect failed", conninfo="host=db password=s3cret dbname=wiki"))
    assert "s3cret" not in line
    fields = dict(part.split("=", 1) for part in shlex.split(line))
    assert fields == {"msg": "connect failed", "conninfo": "host=db password=*** dbname=wiki"}


def test_a_password_holding_a_quote_does_not_leak_its_tail():
    line = redact(kv(conninfo='host=db password=ab"cd"ef'))
    assert line == 'conninfo="host=db password=***"'
    line = redact(kv(conninfo='password="leading'))
    assert "leading" not in line and line.endswith('***"')


def test_text_and_json_log_lines_are_masked_and_well_formed():
    msg = kv(event="replica", conninfo="host=db password=s3cret")
    text = _TextFormatter().format(record(msg))
    assert text.endswith('event=replica conninfo="host=db password=***"')
    doc = json.loads(_JsonFormatter().format(record(msg)))      # still valid JSON
    assert doc["msg"] == 'event=replica conninfo="host=db password=***"'


@pytest.mark.parametrize("text", [
    "bucket=b, secret_access_key=***, addressing_style=path",   # check-config's target line
    "secret_access_key: ***; next",
    "AWS_SECRET_ACCESS_KEY=***, REGION=x",
    "aws_secret_access_key=***, region=x",
    "api_key=***, user=x",
    "host=db, password=***, dbname=wiki",
])
def test_a_value_already_masked_keeps_the_separator_after_it(text):
    """A field list whose secret is already '***' (check-config) reads the same after
    redaction: the comma or semicolon after the mask is not taken with it."""
    assert redact(text) == text


@pytest.mark.parametrize("text, secret", [
    ("secret_access_key=***abc, x", "abc"),          # a value that only starts like the mask
    ("secret_access_key=a,b c", "a,b"),              # a comma inside a value is still masked
    ("AWS_SECRET_ACCESS_KEY=***x, y", "x"),
    ("password=***pw, x", "pw"),
])
def test_a_value_starting_like_the_mask_is_still_masked_whole(text, secret):
    shown = redact(text)
    assert secret not in shown.replace("***", "")
