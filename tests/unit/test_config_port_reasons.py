"""A host:port value (or a port) check-config refuses says why, in one line naming file,
section and key, exit 2 (mirrord.config.hostport, addresses.parse_listen).

A user's `[health] listen = 127.0.0.1:0` was refused as "not host:port: '127.0.0.1:0'",
which it is: the trouble was port 0. Every shape the parser refuses is tried on each key
it reads ([health] listen, [mirrord] metrics_listen; [failover] memcached and a target's
`port` for the port's own shapes), and the message must carry the reason.
"""

from __future__ import annotations

import pytest

from mirrord.cli.main import main


def ini(tmp_path, *, mirrord: str = "", failover: str = "", health: str = "",
        target: str = ""):
    path = tmp_path / "mirrord.ini"
    text = (f"[mirrord]\nstate_dir = {tmp_path}/state\n{mirrord}\n\n[failover]\n"
            f"database = host=127.0.0.1 dbname=wiki\nmode = flagfile\nflag = {tmp_path}/ro\n"
            f"{failover}\n")
    if health:
        text += f"\n[health]\n{health}\n"
    if target:
        text += f"\n[target:mirror]\ntype = rsync\nhost = mirror\npath = /srv/up\n{target}\n"
    path.write_text(text)
    path.chmod(0o600)
    return path


def refusal(tmp_path, capsys, section: str, key: str, value: str) -> str:
    """check-config's one line for `key = value` in `section` (exit 2), past the prefix."""
    place = "target" if section == "target:mirror" else section
    path = ini(tmp_path, **{place: f"{key} = {value}"})
    assert main(["-c", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if f"{path}: [{section}] {key}: " in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0].split(f"[{section}] {key}: ", 1)[1]


LISTEN_KEYS = [("health", "listen"), ("mirrord", "metrics_listen")]

SHAPES = [   # value, words the message must hold
    pytest.param("127.0.0.1:0", "port 0 in '127.0.0.1:0' is not a fixed port", id="port-0"),
    pytest.param("[::1]:0", "port 0 in '[::1]:0' is not a fixed port", id="v6-port-0"),
    pytest.param("127.0.0.1:70000", "port 70000 in '127.0.0.1:70000' is too large: a port "
                 "is a number from 1 to 65535", id="port-above-65535"),
    pytest.param("nowhere", "'nowhere' has no port", id="no-port"),
    pytest.param("[::1]", "an IPv6 address in brackets has no port", id="v6-no-port"),
    pytest.param("127.0.0.1:", "no port after the last ':'", id="nothing-after-colon"),
    pytest.param(":9188", "no host before the ':' in ':9188' (all IPv4 interfaces: 0.0.0.0",
                 id="no-host"),
    pytest.param("*:9188", "'*' is no address to listen on", id="star"),
    pytest.param("::9188", "the host before the last ':' is no IPv6 address: write an IPv6 "
                 "address in brackets",
                 id="v6-without-brackets"),
    pytest.param("fe80::1%lo:9188", "'fe80::1%lo' is a scoped IPv6 address", id="v6-scoped"),
    pytest.param("127.0.0.1 x:9188", "the value holds an '@' or a space (the value is not "
                 "shown", id="space"),
    pytest.param("ex_ample:9188", "the host 'ex_ample' is not an IPv4 address, [IPv6 "
                 "address] or host name", id="bad-name"),
    pytest.param("[fe80::1:9188", "the '[' of an IPv6 address has no closing ']'",
                 id="v6-unclosed"),
]


@pytest.mark.parametrize("value, words", SHAPES)
@pytest.mark.parametrize("section, key", LISTEN_KEYS)
def test_a_listen_address_refused_says_why(tmp_path, capsys, section, key, value, words):
    assert words in refusal(tmp_path, capsys, section, key, value)


@pytest.mark.parametrize("section, key", LISTEN_KEYS)
def test_a_port_of_thousands_of_digits_is_cut_in_the_message(tmp_path, capsys, section, key):
    said = refusal(tmp_path, capsys, section, key, "127.0.0.1:" + "9" * 5000)
    assert "is too large: a port is a number from 1 to 65535" in said and len(said) < 200


@pytest.mark.parametrize("value, words", [
    ("cache:0", "port 0 in 'cache:0' is not a fixed port"),
    ("cache:70000", "port 70000 in 'cache:70000' is too large"),
    (":11211", "no host before the ':' in ':11211'"),
])
def test_a_memcached_address_refused_says_why(tmp_path, capsys, value, words):
    assert words in refusal(tmp_path, capsys, "failover", "memcached", value)


@pytest.mark.parametrize("value, words", [
    ("0", "'0' is not a fixed port: a port is a number from 1 to 65535"),
    ("70000", "'70000' is too large: a port is a number from 1 to 65535"),
])
def test_a_target_port_refused_says_why(tmp_path, capsys, value, words):
    assert words in refusal(tmp_path, capsys, "target:mirror", "port", value)


def test_a_non_numeric_port_is_still_not_repeated(tmp_path, capsys):
    said = refusal(tmp_path, capsys, "health", "listen", "admin:s3cretpw")
    assert "s3cretpw" not in said and "not a port number" in said


USERINFO = [   # user:password@ where host:port was due: the reason, never the value
    "user:s3cretpw@host:", "user:s3cretpw@host:0", "user:s3cretpw@host:99999",
    "user:s3cretpw@host:80", "user:s3cretpw@[::1]:80", "s3cretpw@:80", "@s3cretpw:80",
    "host:80 --password s3cretpw", "user:s3cretpw@host",
]

NO_AT = [   # user:password:port, the @host forgotten: the password read into the host
    "user:s3cretpw:8080", "s3cretpw:user:80", "admin:s3cretpw%x:80",
]


@pytest.mark.parametrize("value", NO_AT)
@pytest.mark.parametrize("section, key", LISTEN_KEYS)
def test_a_password_read_into_the_host_is_not_repeated(tmp_path, capsys, section, key, value):
    """A review: `listen = user:s3cret:8080` said "'user:s3cret:8080': 'user:s3cret' is
    not an IPv6 address"."""
    said = refusal(tmp_path, capsys, section, key, value)
    assert "s3cretpw" not in said and "is no IPv6 address" in said, said


@pytest.mark.parametrize("value", USERINFO)
@pytest.mark.parametrize("section, key", LISTEN_KEYS)
def test_a_value_with_userinfo_is_refused_without_repeating_it(tmp_path, capsys, section, key,
                                                                value):
    """A review: `listen = user:s3cretpw@host:` was refused as "no port after the last ':'
    in 'user:s3cretpw@host:'", and the port-0, too-large and IPv6 messages repeated such a
    value too; config errors are printed before any secret is registered for masking."""
    said = refusal(tmp_path, capsys, section, key, value)
    assert "s3cretpw" not in said and "holds an '@' or a space" in said, said


@pytest.mark.parametrize("value", USERINFO)
def test_a_memcached_address_with_userinfo_is_not_repeated(tmp_path, capsys, value):
    said = refusal(tmp_path, capsys, "failover", "memcached", value)
    assert "s3cretpw" not in said and "not shown" in said, said

