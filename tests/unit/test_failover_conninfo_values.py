"""A conninfo value libpq refuses only when it connects is refused at load (exit 2, one line
naming [failover] database or primary_database, never the password).

Before: `database = host=db sslmode=bogus` (or target_session_attrs=bogus,
connect_timeout=abc) passed check-config; `failover --dry-run` then said "replica
unreachable" (exit 3) and the operator was told to rerun with --force. The values are
checked after libpq's own parse (psycopg.conninfo.conninfo_to_dict), against the words
libpq accepts (mirrord.config.addresses.LIBPQ_CHOICES, LIBPQ_INTEGERS); each refused
value here is checked to be one libpq itself refuses.
"""

from __future__ import annotations

import psycopg
import pytest

from mirrord.config import load
from tests.unit.test_failover_address_forms import SECRET, ini, refused

BAD = [
    ("sslmode", "bogus"), ("sslmode", "Require"), ("target_session_attrs", "bogus"),
    ("gssencmode", "bogus"), ("channel_binding", "bogus"), ("sslcertmode", "bogus"),
    ("sslnegotiation", "bogus"), ("load_balance_hosts", "bogus"),
    ("connect_timeout", "abc"), ("connect_timeout", "nan"), ("keepalives", "x"),
    ("keepalives_idle", "x"), ("keepalives_interval", "x"), ("keepalives_count", "x"),
    ("tcp_user_timeout", "x"),
]


@pytest.mark.parametrize("key", ["database", "primary_database"])
@pytest.mark.parametrize("option, value", BAD)
def test_a_value_libpq_refuses_is_a_config_error_naming_the_key(tmp_path, capsys, key,
                                                                option, value):
    for form in (f"host=db1 user=wiki password={SECRET} {option}={value} dbname=wiki",
                 f"postgresql://wiki:{SECRET}@db1/wiki?{option}={value}"):
        line = f"{key} = {form}" + ("\ndatabase = host=127.0.0.1" if key != "database" else "")
        err = refused(tmp_path, capsys, "failover", key, line)
        assert option in err and len(err.strip().splitlines()) == 1, err


def test_the_password_is_masked_even_where_it_is_the_bad_value(tmp_path, capsys):
    err = refused(tmp_path, capsys, "failover", "database",
                  f"database = host=db1 password={SECRET} sslmode={SECRET}")
    assert "sslmode is not one libpq accepts" in err


@pytest.mark.parametrize("option, value", BAD)
def test_each_refused_value_is_one_libpq_refuses(option, value):
    with pytest.raises(psycopg.Error) as info:   # port 1: nobody listens
        psycopg.connect(f"host=127.0.0.1 port=1 {option}={value}")
    assert "Connection refused" not in str(info.value), info.value


@pytest.mark.parametrize("conninfo", [
    "host=db1 sslmode=verify-full target_session_attrs=read-write connect_timeout=10",
    "host=db1 sslmode=require sslnegotiation=direct load_balance_hosts=random",
    "host=db1 ssl_min_protocol_version=TLSv1.2 ssl_max_protocol_version=tlsv1.3",
    "host=db1 keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3",
    "host=db1 connect_timeout=-1 tcp_user_timeout=0 channel_binding=prefer gssencmode=disable",
    "host=db1 sslmode='' dbname=wiki",                 # empty: libpq's default
    "host=db1 connect_timeout=2.5",                    # psycopg reads it: int(float(...))
    "postgresql://wiki@db1/wiki?target_session_attrs=prefer-standby&sslcertmode=allow",
    "host=db1 replication=database",
])
def test_values_libpq_accepts_load(tmp_path, conninfo):
    assert load(ini(tmp_path, f"database = {conninfo}")).failover.database == conninfo


def test_every_checked_option_is_a_libpq_keyword():
    from mirrord.config.addresses import LIBPQ_CHOICES, LIBPQ_INTEGERS

    keywords = {o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults()}
    assert set(LIBPQ_CHOICES) | set(LIBPQ_INTEGERS) <= keywords
