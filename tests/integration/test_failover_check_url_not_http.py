"""A check_url answered by something that is not HTTP (the wrong port: here the real sshd,
whose banner is no HTTP status line) fails that step only: exit 1 with the account of what
was done, the post hook still runs, and failover.log gets its line. It once escaped as a
traceback (http.client.BadStatusLine) after the flip, with nothing logged.
Real PostgreSQL pair, real memcached, real sshd."""

from __future__ import annotations

import os
import sys

from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


def test_a_check_url_answered_by_sshd_fails_that_step_only(site: Site, sshd, capsys):
    host, port = sshd.host, sshd.port
    hooked = site.root / "post-hook-ran"
    site.configure(check_url=f"http://{host}:{port}/api.php", check_pattern="readonly",
                   post_failover=f"{sys.executable} -c \"open('{hooked}', 'w')\"")
    assert site.run("failover") == 1
    out = _output(capsys)
    assert "Traceback" not in out
    # sshd sends its banner, then drops a client whose first line is no SSH ident: the
    # request may still be on its way then, so the reset can come before the banner is read
    assert "NOT done:  check_url: GET http://" in out
    assert "not an HTTP answer" in out or "Connection reset by peer" in out
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
    assert site.marker.read_text() == "x" and hooked.exists()      # reload and post hook ran
    record = site.log()[-1]
    assert record["outcome"] == "failed" and record["exit"] == 1
    assert [s["status"] for s in record["steps"]] == ["done", "done", "done", "done", "failed",
                                                      "done"]
