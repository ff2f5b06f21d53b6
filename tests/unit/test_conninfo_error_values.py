"""A conninfo's config error never contains a value of that conninfo, whatever the key and form.

Before: with no password= in the same conninfo, a `key=value` conninfo's refused value was
quoted in its error: `port 'pw-Zq81-secret' is not a port number`, and the same for
sslmode, target_session_attrs, connect_timeout, keepalives_idle... (the URI form masked
them): a password pasted into the wrong key was printed by check-config, failover and
failover.log. Now the message names the key only, for both forms and every key checked.
"""

from __future__ import annotations

import subprocess

import pytest

from mirrord.config.addresses import LIBPQ_CHOICES, LIBPQ_INTEGERS, conninfo_problem
from tests.unit.test_config_hostile import MARK, MIRRORD, only, problems, write

KEYS = ["port", *LIBPQ_CHOICES, *LIBPQ_INTEGERS]


def _forms(key: str, value: str) -> list[str]:
    return [f"host=127.0.0.1 user=mirrord {key}={value} dbname=wiki",
            f"host=127.0.0.1 {key}='{value}'",
            f"postgresql://mirrord@127.0.0.1/wiki?{key}={value}"]


@pytest.mark.parametrize("key", KEYS)
def test_the_error_names_the_key_and_never_the_value(key):
    for conninfo in _forms(key, MARK):
        problem = conninfo_problem(conninfo)
        assert problem and MARK not in problem, (conninfo, problem)
        assert ("the port" if key == "port" else key) in problem, problem
        assert "the value is not shown" in problem


@pytest.mark.parametrize("value", ["54x2", "Require", "abc"])
def test_an_ordinary_typo_is_not_shown_either(value):
    for key in ("port", "sslmode", "connect_timeout"):
        problem = conninfo_problem(f"host=db {key}={value}")
        assert problem and value not in problem, problem


@pytest.mark.parametrize("key", ["database", "primary_database"])
@pytest.mark.parametrize("option", ["port", "sslmode", "target_session_attrs",
                                    "connect_timeout", "keepalives_idle"])
def test_check_config_never_prints_it(tmp_path, key, option):
    path = write(tmp_path, "failover", key, f"host=127.0.0.1 user=mirrord {option}={MARK}")
    found = problems(path)
    only(found, "failover", key, "the value is not shown")
    assert MARK not in repr(found)
    res = subprocess.run([str(MIRRORD), "-c", str(path), "check-config"], check=False,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert MARK not in res.stdout + res.stderr and "Traceback" not in res.stderr
