"""Every address form a mirror-host key accepts works at use, or check-config refuses it
(exit 2, one line naming file, section and key, no traceback, no credential).

Each refused form below once passed check-config and then failed at use: a check_url
urllib cannot fetch (or one that made check-config itself crash), a reload_command that
cannot be split (found only after the flip), a conninfo libpq cannot parse (its error
quoted a fragment of the password), a listen address bind(2) cannot take; and a timeout
of 0, which fails every use.
"""

from __future__ import annotations

import socket

import pytest

from mirrord.cli.main import main
from mirrord.config import load
from mirrord.failover import sitecheck
from mirrord.health.service import make_server

SECRET = "s3cretpw"


def ini(tmp_path, failover: str = "", *, health: str = "", mirrord: str = ""):
    path = tmp_path / "mirrord.ini"
    text = (f"[mirrord]\nstate_dir = {tmp_path}/state\n{mirrord}\n\n[failover]\n"
            f"mode = flagfile\nflag = {tmp_path}/ro\n{failover}\n")
    if "database" not in failover:
        text += "database = host=127.0.0.1 dbname=wiki\n"
    if health:
        text += f"\n[health]\n{health}\n"
    path.write_text(text)
    path.chmod(0o600)
    return path


def refused(tmp_path, capsys, section: str, key: str, line: str, **kw) -> str:
    path = ini(tmp_path, line, **kw) if section == "failover" else ini(tmp_path, **kw)
    assert main(["-c", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: [{section}] {key}: " in err, err
    assert "Traceback" not in err and SECRET not in err
    return err


@pytest.mark.parametrize("url", [
    "http://[::1/api.php",                       # urlsplit raised: check-config crashed
    "http://wiki.example/a b",                   # http.client: InvalidURL, raised mid-failover
    "http://wiki.example:abc/",                  # nonnumeric port, raised mid-failover
    "http://wiki.example:70000/",
    "http:///api.php",                           # no host
    f"http://admin:{SECRET}@127.0.0.1/api.php",  # never sent, printed everywhere
    "ftp://wiki.example/",
])
def test_check_url_forms_urllib_cannot_fetch_are_refused(tmp_path, capsys, url):
    refused(tmp_path, capsys, "failover", "check_url", f"check_url = {url}")


def test_check_url_forms_that_are_accepted_are_fetched(tmp_path):
    for url in ("http://127.0.0.1:1/api.php?action=query&meta=siteinfo&format=json",
                "http://[::1]:1/", "https://localhost:1/x%20y"):
        cfg = load(ini(tmp_path, f"check_url = {url}"))
        ok, detail = sitecheck.check(cfg.failover.check_url, "", timeout=2)
        assert not ok and "Connection refused" in detail, detail   # fetched, nobody there


def test_sitecheck_never_raises_and_never_shows_a_password():
    for url in ("http://wiki.example:abc/", "http://wiki.example/a b",
                f"http://admin:{SECRET}@127.0.0.1:1/"):
        ok, detail = sitecheck.check(url, "", timeout=2)
        assert not ok and SECRET not in detail


def test_a_reload_command_that_cannot_be_split_is_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, "failover", "reload_command",
                  'reload_command = systemctl reload "php8.2-fpm')
    assert "cannot split into a command line" in err


@pytest.mark.parametrize("key", ["database", "primary_database"])
@pytest.mark.parametrize("conninfo", [
    f"host=db1 password=se {SECRET} dbname=wiki",      # an unquoted space in the password
    f"host=db1 password='{SECRET} dbname=wiki",        # an unclosed quote
    "host=db1 dbnmae=wiki",                            # a typo in a keyword
    f"postgresql://wiki:{SECRET}@db1:notaport/wiki",   # a URI with a bad port
    "host=db1 port=5432,x dbname=wiki",
])
def test_a_conninfo_libpq_cannot_parse_is_refused_without_its_password(tmp_path, capsys, key,
                                                                        conninfo):
    line = f"{key} = {conninfo}" + ("\ndatabase = host=127.0.0.1" if key != "database" else "")
    err = refused(tmp_path, capsys, "failover", key, line)
    assert "cret" not in err    # libpq's message quotes the fragment after the space


@pytest.mark.parametrize("conninfo", [
    "host=/var/run/postgresql dbname=wiki", "host=db1,db2 port=5432,5433 dbname=wiki",
    "postgresql://wiki@[::1]:5432/wiki?connect_timeout=3", "service=wiki",
    "host=db1 password='a b' dbname=wiki",
])
def test_conninfo_forms_libpq_takes_are_accepted(tmp_path, conninfo):
    assert load(ini(tmp_path, f"database = {conninfo}")).failover.database == conninfo


@pytest.mark.parametrize("listen", ["*:9188", ":9188", "::9188", "fe80::1%lo:9188",
                                    "127.0.0.1 x:9188", "[::1]:0"])
@pytest.mark.parametrize("section, key", [("health", "listen"), ("mirrord", "metrics_listen")])
def test_listen_forms_bind_cannot_take_are_refused(tmp_path, capsys, listen, section, key):
    refused(tmp_path, capsys, section, key, "", **{section: f"{key} = {listen}"})


def test_listen_forms_that_are_accepted_bind(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    for text in (f"127.0.0.1:{port}", f"[::1]:{port}", f"::1:{port}", f"localhost:{port}",
                 f"[127.0.0.1]:{port}"):
        cfg = load(ini(tmp_path, health=f"listen = {text}"))
        make_server(None, *cfg.health.listen).server_close()


@pytest.mark.parametrize("key", ["connect_timeout", "statement_timeout", "hook_timeout",
                                 "check_timeout"])
def test_a_zero_timeout_is_refused(tmp_path, capsys, key):
    # hook_timeout = 0 killed every hook at once: each pre hook "refused" the switch
    err = refused(tmp_path, capsys, "failover", key, f"{key} = 0s")
    assert "must be greater than zero" in err
