"""reload_command runs the same way as the hooks (README): bounded by hook_timeout.

Before, it had a hard-coded 120 s and ignored hook_timeout (a breaker).
"""

from __future__ import annotations

import time

from tests.integration.test_failover_procedure import site  # noqa: F401 (fixture)


def test_reload_command_is_killed_at_hook_timeout(site, tmp_path, capsys):  # noqa: F811
    pidfile = tmp_path / "reload.pid"
    site.configure(reload_command=f"sh -c 'echo $$ > {pidfile}; sleep 60'", hook_timeout="1s")
    began = time.monotonic()
    assert site.run("failover") == 1
    assert time.monotonic() - began < 20
    out = capsys.readouterr().out
    assert "still running after 1s (hook_timeout); killed" in out
    step = next(s for s in site.log()[-1]["steps"] if s["name"] == "reload")
    assert step["status"] == "failed"
