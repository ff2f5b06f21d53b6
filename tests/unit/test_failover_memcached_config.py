"""[failover] memcached: host:port, [v6addr]:port and absolute socket paths; nothing else."""

from __future__ import annotations

import pytest

from mirrord.cli.main import main
from mirrord.config import parse_memcached_server
from mirrord.failover import cache


@pytest.mark.parametrize("text, parsed", [
    ("127.0.0.1:11211", ("127.0.0.1", 11211)),
    ("cache2", ("cache2", 11211)),
    ("[::1]:11212", ("::1", 11212)),
    ("/run/memcached/memcached.sock", "/run/memcached/memcached.sock"),
])
def test_accepted_forms(text, parsed):
    assert parse_memcached_server(text) == parsed


@pytest.mark.parametrize("text", ["run/memcached.sock", "::1", "[::1", "[nothost]:1",
                                  "host:0", "host:99999", "bad_host!:1", "/run/dir/"])
def test_rejected_forms(text):
    with pytest.raises(ValueError):
        parse_memcached_server(text)


def test_manual_flush_command_for_each_form():
    assert cache.flush_command(("10.0.0.5", 11211)).endswith("| nc 10.0.0.5 11211")
    assert cache.flush_command(("::1", 11212)).endswith("| nc ::1 11212")
    assert cache.flush_command("/run/memcached/memcached.sock").endswith(
        "| nc -U /run/memcached/memcached.sock")
    assert cache.flush_command("/run/my cache/m.sock").endswith("| nc -U '/run/my cache/m.sock'")
    assert cache.name("/run/m.sock") == "unix:/run/m.sock" and cache.name(("::1", 1)) == "[::1]:1"


def test_check_config_rejects_a_relative_socket_path_with_exit_2(tmp_path, capsys):
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path}/state\n\n[failover]\n"
                   "database = host=127.0.0.1 dbname=wiki\nmode = flagfile\n"
                   f"flag = {tmp_path}/ro\nmemcached = 127.0.0.1:11211, run/memcached.sock\n")
    assert main(["-c", str(ini), "check-config"]) == 2
    err = capsys.readouterr().err
    assert f"{ini}: [failover] memcached: 'run/memcached.sock': a UNIX socket path must be " \
           "absolute" in err
    assert "Traceback" not in err


SECRET = "Hunter2pwB"


@pytest.mark.parametrize("text", [
    f"mcuser:{SECRET}",                    # the breaker's: user:password, @host forgotten
    f"mcuser:{SECRET}/x",                  # a password holding '/' (read as a relative path)
    f"mcuser:{SECRET}:z",                  # or ':' (read as an IPv6 address)
    f"mcuser:pa:{SECRET}1",
    f"mcuser:{SECRET}:1234",               # several ':' ending in digits: no IPv6 address
    f"[::1]:{SECRET}",                     # a bracketed address, then a non-numeric port
    f"cache:{SECRET}",
])
def test_a_value_that_may_hold_a_password_is_never_repeated(text):
    """Before: `not host:port: 'mcuser:Hunter2pwB'` (and the relative-path and IPv6
    messages) repeated the value, where the README withholds user:pw@ and a URI's port."""
    with pytest.raises(ValueError) as info:
        parse_memcached_server(text)
    assert SECRET not in str(info.value) and "not shown" in str(info.value)


@pytest.mark.parametrize("text, shown", [
    ("host:99999", "'host:99999'"), ("::1", "'::1'"), ("fe80::1:11211", "'fe80::1:11211'"),
    ("run/memcached.sock", "'run/memcached.sock'"), ("bad_host!:1", "'bad_host!:1'"),
])
def test_a_value_that_holds_no_password_is_still_named(text, shown):
    with pytest.raises(ValueError) as info:
        parse_memcached_server(text)
    assert shown in str(info.value)


def test_check_config_does_not_repeat_the_breakers_value(tmp_path, capsys):
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path}/state\n\n[failover]\n"
                   "database = host=127.0.0.1 dbname=wiki\nmode = flagfile\n"
                   f"flag = {tmp_path}/ro\nmemcached = mcuser:{SECRET}\n")
    ini.chmod(0o600)
    assert main(["-c", str(ini), "check-config"]) == 2
    err = capsys.readouterr().err
    assert f"{ini}: [failover] memcached: not host:port" in err and SECRET not in err, err
    assert "Traceback" not in err


def test_a_listen_address_with_a_non_numeric_port_is_not_repeated():
    from mirrord.config.addresses import parse_listen

    with pytest.raises(ValueError) as info:
        parse_listen(f"admin:{SECRET}")
    assert SECRET not in str(info.value)
