"""[failover] timeouts handed on as a C int of milliseconds (PostgreSQL's statement_timeout,
the socket timeouts of memcached's connect_timeout and check_url's check_timeout) are
refused at load above 2**31 - 1 ms, with one message naming file, section, key and the
limit: `statement_timeout = 25d` passed check-config, then every connect failed."""

from __future__ import annotations

import pytest

from mirrord.config import load
from tests.unit.test_failover_config import ini, problems

MAX_INT_MS = 2147483.647   # (2**31 - 1) ms
KEYS = ["statement_timeout", "connect_timeout", "check_timeout"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("text", ["2147483647ms", "2147483.647s", "2147483.647"])
def test_the_largest_int_of_milliseconds_is_accepted(tmp_path, key, text):
    assert getattr(load(ini(tmp_path, f"{key} = {text}")).failover, key) == MAX_INT_MS


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("text", ["2147483648ms", "2147483.648s", "25d", "2160000000ms"])
def test_one_millisecond_more_is_refused_naming_key_and_limit(tmp_path, key, text):
    path = ini(tmp_path, f"{key} = {text}")
    found = problems(path)
    assert len(found) == 1 and "\n" not in found[0], found
    assert found[0].startswith(f"{path}: [failover] {key}: too long: {text!r}"), found
    assert "at most 2147483.647s" in found[0] and "int of milliseconds" in found[0], found


def test_other_durations_keep_their_own_limit(tmp_path):
    # checked in Python only (deadlines, thread waits, comparisons): threading.TIMEOUT_MAX
    fo = load(ini(tmp_path, "hook_timeout = 30d\nswitchover_timeout = 30d\n"
                            "max_heartbeat_age = 30d\nmax_replay_lag = 30d\n"
                            "max_clock_skew = 30d", health="interval = 30d")).failover
    assert fo.hook_timeout == fo.switchover_timeout == fo.max_heartbeat_age == 30 * 86400
