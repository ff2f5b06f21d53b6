"""Hooks around the switch and the check_url proof, against the real PostgreSQL pair and memcached.

Each hook is a small Python script that records its argv and MIRRORD_* environment
to a JSON file and exits with the code it was given.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
from pathlib import Path

import pytest

from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)

HOOK = """\
import json, os, sys
out, code = sys.argv[1], int(sys.argv[2])
env = {k: v for k, v in os.environ.items() if k.startswith("MIRRORD_")}
with open(out, "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[3:], "env": env}) + "\\n")
print("hook says hello password=hunter2-hook")
sys.exit(code)
"""


@pytest.fixture
def hook(tmp_path) -> callable:
    script = tmp_path / "hook.py"
    script.write_text(HOOK)

    def command(name: str, code: int = 0) -> str:
        return f"{sys.executable} {script} {tmp_path / (name + '.jsonl')} {code} 'two words'"
    return command


def calls(site: Site, name: str) -> list[dict]:
    path = site.root / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_pre_and_post_hooks_run_with_their_environment(site: Site, hook, capsys):
    site.configure(pre_failover=hook("pre"), post_failover=hook("post"))
    assert site.run("failover") == 0, _output(capsys)
    out = _output(capsys)
    (pre,), (post,) = calls(site, "pre"), calls(site, "post")
    assert pre["argv"] == ["two words"]       # split like argv, no shell
    assert pre["env"]["MIRRORD_ACTION"] == "failover" and pre["env"]["MIRRORD_HOOK"] == \
        "pre_failover"
    assert post["env"]["MIRRORD_HOOK"] == "post_failover"
    for env in (pre["env"], post["env"]):
        assert env["MIRRORD_DRY_RUN"] == "0" and env["MIRRORD_FORCED"] == "0"
        assert float(env["MIRRORD_REPLAY_LAG_SECONDS"]) >= 0
        assert 0 <= float(env["MIRRORD_HEARTBEAT_AGE_SECONDS"]) < 60
    assert "hook.pre_failover" in out and "hook post_failover" in out
    assert "hook says hello" in out and "hunter2-hook" not in out
    record = site.log()[-1]
    assert any("hook says hello" in s["detail"] for s in record["steps"])
    assert "hunter2-hook" not in json.dumps(record)
    assert [s["name"] for s in record["steps"]][-1] == "hook post_failover"


def test_a_refusing_pre_hook_leaves_the_app_config_untouched(site: Site, hook, capsys):
    site.configure(pre_failover=hook("pre", 7), post_failover=hook("post"))
    before = site.link.readlink()
    assert site.run("failover") == 3
    out = _output(capsys)
    assert "refused: hook.pre_failover (value exit 7" in out and "--force" in out
    assert site.link.readlink() == before and not site.marker.exists()
    assert calls(site, "post") == []
    assert site.log()[-1]["outcome"] == "refused"


def test_force_overrides_a_refusing_pre_hook(site: Site, hook, capsys):
    site.configure(pre_failover=hook("pre", 7))
    assert site.run("failover", "--force") == 0
    assert "FAIL (forced) hook.pre_failover" in _output(capsys)
    assert calls(site, "pre")[0]["env"]["MIRRORD_FORCED"] == "1"
    assert site.link.readlink().name == "readonly.php"


def test_a_failing_post_hook_is_exit_1_after_everything_else_ran(site: Site, hook, capsys):
    site.configure(post_failback=hook("post", 1))
    assert site.run("failover") == 0
    assert site.run("failback") == 1
    out = _output(capsys)
    assert "NOT done:  hook post_failback: exit 1" in out
    assert site.link.readlink() == Path("readwrite.php") or \
        str(site.link.readlink()) == site.original.decode()
    assert site.marker.exists()     # the reload ran before the post hook
    assert calls(site, "post")[0]["env"]["MIRRORD_ACTION"] == "failback"


def test_a_hook_that_hangs_is_killed_after_hook_timeout(site: Site, capsys):
    site.configure(pre_failover=f"{sys.executable} -c 'import time; time.sleep(60)'",
                   hook_timeout="0.5s")
    assert site.run("failover") == 3
    assert "still running after 0.5s (hook_timeout); killed" in _output(capsys)


def test_dry_run_lists_hooks_without_running_them(site: Site, hook, capsys):
    site.configure(pre_failover=hook("pre"), post_failover=hook("post"))
    assert site.run("failover", "--dry-run") == 0
    out = _output(capsys)
    assert "hook pre_failover" in out and "hook post_failover" in out
    assert calls(site, "pre") == [] and calls(site, "post") == []


def test_a_dry_run_that_would_refuse_lists_the_pre_hook_too(site: Site, pg, hook, capsys):
    """The plan printed under "plan (not carried out)" is the whole plan: the pre hook
    included (the breaker's finding: it was listed only when the run would go ahead)."""
    site.configure(pre_failover=hook("pre"), post_failover=hook("post"))
    pg.pause_replay()
    assert site.run("failover", "--dry-run") == 3
    plan = _output(capsys).split("plan (not carried out)")[1]
    assert "hook pre_failover" in plan and "hook post_failover" in plan
    assert calls(site, "pre") == [] and calls(site, "post") == []


class _Page(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_check_url_proves_the_site_answers_read_only(site: Site, web, capsys):
    _Page.body = b'{"query":{"general":{"readonly":"","readonlyreason":"mirror"}}}'
    url = f"http://127.0.0.1:{web.server_address[1]}/api.php?action=query&meta=siteinfo"
    site.configure(check_url=url, check_pattern='"readonly"')
    assert site.run("failover") == 0
    assert "body matches" in _output(capsys)


def test_check_url_mismatch_is_exit_1_with_what_was_seen(site: Site, web, capsys):
    _Page.body = b'{"query":{"general":{"sitename":"Wiki"}}}'
    url = f"http://127.0.0.1:{web.server_address[1]}/api.php"
    site.configure(check_url=url, check_pattern='"readonly"')
    assert site.run("failover") == 1
    out = _output(capsys)
    assert "NOT done:  check_url: GET" in out and "does not match" in out
    assert '"sitename":"Wiki"' in out


@pytest.mark.parametrize("key,value", [
    ("reload_command", "/usr/sbin/php8.2-fpm-reload-typo"),
    ("reload_command", "nosuchprogram-xyz --now"),
    ("post_failover", "/usr/local/sbin/wiki-vip up"),
    ("pre_failover", "wiki-vip-missing check"),
])
def test_a_program_missing_here_refuses_before_anything_changes(site: Site, capsys, key, value):
    """A reload command or hook whose program is not on this host passed check-config and
    the dry run, then failed after the flip: the site switched and not reloaded, with the
    advice to run by hand a program that does not exist (a trial). Now the run, its dry
    run and /ready's checks refuse it (exit 3) naming the key; --force accepts it."""
    from mirrord.failover.procedure import Procedure
    from mirrord.config import load

    site.configure(**{key: value})
    assert site.run("failover", "--dry-run") == 3
    out = _output(capsys)
    assert f"program.{key}" in out and f"[failover] {key}" in out, out
    assert site.run("failover") == 3
    out = _output(capsys)
    assert os.readlink(site.link) == site.original.decode(), out   # nothing changed
    assert not site.marker.exists(), out
    ready = Procedure(load(site.ini)).failover_checks()
    assert any(c.name == f"program.{key}" and c.refuses for c in ready)
    code = site.run("failover", "--force")
    out = _output(capsys)
    assert os.readlink(site.link).endswith("readonly.php"), out       # the flip went ahead
    assert code == (1 if key in ("reload_command", "post_failover") else 0), out
