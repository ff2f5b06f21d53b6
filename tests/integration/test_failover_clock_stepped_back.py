"""switchover waits for a heartbeat written after it began: a different stamp, not a later
one. The stamps come from the primary's clock; when NTP steps that clock back (it ran an
hour ahead), every new heartbeat is dated before the one seen first, and switchover once
waited out switchover_timeout and refused ("is mirrord running on the primary?") while
fresh heartbeats arrived. Real PostgreSQL pair, real memcached."""

from __future__ import annotations

import os
import time

from tests.integration.test_failover_procedure import (  # noqa: F401 (fixture)
    HeartbeatWriter,
    Site,
    _output,
    site,
)


def test_switchover_takes_a_new_heartbeat_dated_before_the_first(site: Site, capsys):
    site.configure(switchover_timeout="20s")
    site.write_heartbeat(unix=time.time() + 3600)     # written before NTP stepped back
    with HeartbeatWriter(site):                        # the clock is right again
        assert site.run("switchover") == 0, _output(capsys)
    assert site.check("heartbeat.new")["ok"] is True
    assert site.check("heartbeat.age")["ok"] is True
    assert os.readlink(site.link) == str(site.etc / "readonly.php")
