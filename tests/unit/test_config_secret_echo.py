"""No config error repeats a password, however the value holding it is mistyped.

Before: parse_http_url looked for a userinfo only after `//`, so an endpoint_url or
check_url with its scheme left out (`u:pw@host:8333`), a slash dropped (`http:/u:pw@host`),
a colon dropped (`https//u:pw@host`) or a slash too many (`http:///u:pw@host`) fell to the
later errors, which printed the value whole; `http://u:pw` (its '@host' left out) printed pw
as a port. The same for a conninfo URI read as host u, port pw (`postgresql://u:pw/db`), an
rsync `user = bob:pw@`, and a line configparser cannot parse (`secret_access_key X`,
quoted whole in its error).
"""

from __future__ import annotations

import subprocess

import pytest

from mirrord.config.addresses import parse_http_url
from mirrord.config import load
from tests.unit.test_config_hostile import MARK, MIRRORD, only, problems, write

URL_KEYS = [("target:bucket", "endpoint_url"), ("failover", "check_url")]
WITH_USERINFO = [f"u:{MARK}@127.0.0.1:8333", f"http:/u:{MARK}@127.0.0.1:8333",
                 f"https//u:{MARK}@127.0.0.1:8333", f"http:///u:{MARK}@h/",
                 f"//u:{MARK}@h/", f"http:u:{MARK}@h", f"{MARK}@h:8333",
                 f"http://h\\u:{MARK}@x/"]
SHAPES = ["no scheme", "one slash", "no colon", "three slashes", "no scheme, slashes",
          "no slash", "a token, no scheme", "backslash"]


@pytest.mark.parametrize("url", WITH_USERINFO, ids=SHAPES)
def test_a_userinfo_wherever_a_mistyped_url_would_have_it_is_refused(url):
    with pytest.raises(ValueError) as info:
        parse_http_url(url)
    assert "must not carry credentials" in str(info.value) and MARK not in str(info.value)


# no '@': what could be a password is what reads as a port (`http://u:pw`, '@host' dropped)
@pytest.mark.parametrize("url", [f"http://u:{MARK}", f"http://u:{MARK}/x", f"admin:{MARK}",
                                 f"http:/u:{MARK}", f"https//u:{MARK}", f"http://[u:{MARK}"])
def test_a_url_whose_port_could_be_a_password_is_not_shown(url):
    with pytest.raises(ValueError) as info:
        parse_http_url(url)
    assert "the value is not shown" in str(info.value) and MARK not in str(info.value)


@pytest.mark.parametrize("url, words", [
    ("127.0.0.1:8333", "must be an http:// or https:// URL: got '127.0.0.1:8333'"),
    ("ftp://h:21/x", "got 'ftp://h:21/x'"),
    ("http://h:99999/", "Port out of range 0-65535): got 'http://h:99999/'"),
    ("http://h ost/", "got 'http://h ost/'"),
    ("http://[::1]:0/", "port 0 is not a port: got 'http://[::1]:0/'"),
])
def test_a_value_that_cannot_hold_a_password_is_still_shown(url, words):
    with pytest.raises(ValueError, match=".") as info:
        parse_http_url(url)
    assert words in str(info.value)


@pytest.mark.parametrize("url", ["https://h/users/@me?mail=a@b", "http://[::1]:8333/x"])
def test_an_at_sign_after_the_authority_is_still_accepted(url):
    assert parse_http_url(url) == url


@pytest.mark.parametrize("section, key", URL_KEYS)
@pytest.mark.parametrize("url", WITH_USERINFO[:3], ids=SHAPES[:3])
def test_check_config_never_shows_the_password_of_a_mistyped_url(tmp_path, section, key, url):
    path = write(tmp_path, section, key, url)
    only(problems(path), section, key, "must not carry credentials")
    res = subprocess.run([str(MIRRORD), "-c", str(path), "check-config"], check=False,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and f"[{section}] {key}: must not carry" in res.stderr
    assert MARK not in res.stdout + res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("key", ["database", "primary_database"])
@pytest.mark.parametrize("conninfo", [f"postgresql://u:{MARK}/app", f"postgres://u:{MARK}"])
def test_a_conninfo_uri_whose_port_is_a_password_does_not_show_it(tmp_path, key, conninfo):
    found = problems(write(tmp_path, "failover", key, conninfo))
    only(found, "failover", key, "the port is not a port number")
    assert MARK not in repr(found)


def test_a_key_value_conninfos_bad_port_is_not_shown_either(tmp_path):
    # `port=<password>` with no password= beside it was shown (tests/unit/test_conninfo_error_values.py)
    found = problems(write(tmp_path, "failover", "database", "host=db port=54x2"))
    only(found, "failover", "database", "the port is not a port number")
    assert "54x2" not in repr(found)


def test_an_rsync_user_holding_a_password_is_refused_without_it(tmp_path):
    found = problems(write(tmp_path, "target:host", "user", f"bob:{MARK}@"))
    only(found, "target:host", "user", "not a valid user name")
    assert MARK not in repr(found)


@pytest.mark.parametrize("host, words", [
    (f"bob:{MARK}@mirror.example.org", "holds '@'"),
    (f"{MARK}@mirror.example.org", "holds '@'"),
    (f"mirror.example.org -o ProxyCommand={MARK}", "holds a space"),
    (f"mirror.example.org\t{MARK}", "holds a space"),
], ids=["user and password", "user", "ssh option", "tab"])
def test_an_rsync_host_holding_more_than_a_host_is_refused_without_it(tmp_path, host, words):
    """An rsync target's `host` goes to ssh as its destination and into every message
    about the target: user:password@ or anything after a space is never shown."""
    found = problems(write(tmp_path, "target:host", "host", host))
    only(found, "target:host", "host", words)
    assert MARK not in repr(found)


@pytest.mark.parametrize("host", ["mirror.example.org", "10.0.0.7", "::1", "mirror-alias_2"])
def test_an_rsync_host_that_is_a_host_still_loads(tmp_path, host):
    assert load(write(tmp_path, "target:host", "host", host)).targets["host"].rsync.host == host


@pytest.mark.parametrize("data, words", [
    (f"[target:b]\ntype = s3\nsecret_access_key {MARK}\n", "line 3 is neither"),
    (f"[target:b]\nsecret_access_key {MARK}\n{MARK}\n", "lines 2, 3 are neither"),
    (f"endpoint_url = u:{MARK}@h\n[target:b]\n", "line 1 comes before the first [section]"),
    # a header not closed: before, read as the key `[source` (':' delimits keys) and the
    # keys after it as unknown in the section above (found by trying it as a user)
    (f"[mirrord]\nstate_dir = s\n[source:{MARK}\npath = p\n", "line 3 opens a [section] "
     "header and does not close it"),
    (f"[mirrord\nstate_dir = {MARK}\n", "line 1 opens a [section] header"),
    (f"[target:b]\ntype = s3\n[{MARK} = x\n[source:a]\n", "line 3 opens a [section] header"),
], ids=["no equals sign", "two lines", "before any section", "header not closed",
        "first header not closed", "a key starting with ["])
def test_a_line_configparser_refuses_is_named_by_number_only(tmp_path, data, words):
    found = problems(write(tmp_path, data=data.encode()))
    only(found, "", "", words)
    assert MARK not in repr(found)


def test_a_closed_header_loads_and_an_indented_bracket_is_a_continuation(tmp_path):
    """Only an unindented line opening '[' with no ']' is a header not closed: a header
    with a comment after it loads, and an indented line starting with '[' is still named
    as a value continued onto the next line (what it is to configparser)."""
    (tmp_path / "src").mkdir()
    body = (f"[mirrord] ; the daemon\nstate_dir = {tmp_path / 'state'}\n"
            f"[source:up]\npath = {tmp_path / 'src'}\ntargets = t\nexclude = *.tmp\n"
            f"[target:t]\ntype = local\npath = {tmp_path / 'm'}\n")
    cfg = tmp_path / "m.ini"
    cfg.write_text(body)
    assert load(cfg).sources[0].name == "up"
    cfg.write_text(body.replace("exclude = *.tmp\n", "exclude = *.tmp,\n  [abc*\n"))
    only(problems(cfg), "source:up", "exclude", "continues onto the next line")


@pytest.mark.parametrize("key", ["database", "primary_database"])
@pytest.mark.parametrize("conninfo", [
    f"postgresql://wiki:pw@{MARK}@127.0.0.1:5432/wiki",          # an '@' in the password
    f"postgres://wiki@x:{MARK}@db1,db2/wiki",                   # ...in the user name
    f"  POSTGRESQL://wiki:{MARK}@@db/wiki",                     # the scheme in capitals
    f"host=db dbname='postgresql://wiki:pw@{MARK}@db/wiki'",   # a dbname libpq expands
    f"postgresql://u:pw?x@{MARK}@db.invalid/app",             # a '?' before the '@'s
    f"postgresql://db.invalid?password=Pa@{MARK}",            # a query read as userinfo
    f"postgresql://u:pw#x@{MARK}@db/app",
])
def test_a_conninfo_uri_with_a_raw_at_sign_in_its_userinfo_is_refused_unshown(tmp_path, key,
                                                                              conninfo):
    # libpq ends the userinfo at the first '@' before the first '/': the rest of the
    # password became the host, which failover printed and logged (reviews, helper-136, 137)
    # (a shape libpq cannot parse, or whose "port" is the rest, says that instead)
    path = write(tmp_path, "failover", key, conninfo)
    found = problems(path)
    only(found, "failover", key, "")
    assert MARK not in repr(found)
    if "@@" not in conninfo and "wiki@x:" not in conninfo:
        assert "must be written percent-encoded (%40, %3F, %23)" in found[0][2], found
    res = subprocess.run([str(MIRRORD), "-c", str(path), "check-config"], check=False,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and f"[failover] {key}: " in res.stderr
    assert MARK not in res.stdout + res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("conninfo", ["postgresql://wiki:pw%40x@db/wiki",
                                      "postgresql://wiki@db/wiki?options=-c%20a%3Db@c",
                                      "postgresql://u@db?application_name=a@b",
                                      "postgresql://bob%40server:pw@db/wiki",
                                      "host=db user=bob@server password=a@b@c"])
def test_an_encoded_or_key_value_at_sign_is_still_accepted(tmp_path, conninfo):
    assert load(write(tmp_path, "failover", "database", conninfo)).failover.database == conninfo
