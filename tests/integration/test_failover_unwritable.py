"""A failover run by a user who cannot make the change is refused before anything runs
(exit 3: nothing changed, no hook run), not stopped at the flip after the pre hook ran
(exit 1, it was), nor ended by a traceback (an unwritable state_dir, where the run's lock
lives). The real `mirrord` entry point runs as root without CAP_DAC_OVERRIDE (setpriv(1)),
which is what a user without write access to those directories sees, against the real
PostgreSQL pair and memcached."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.test_failover_procedure import Site, site  # noqa: F401 (fixture)

NOBODY = 65534
DROP = "-dac_override,-fowner"


def run_without_override(site: Site, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(["setpriv", f"--inh-caps={DROP}", f"--bounding-set={DROP}", "--",
                           sys.executable, "-m", "mirrord", "-c", str(site.ini), *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture
def hooked(site: Site):
    marker = site.root / "pre-hook-ran"
    site.configure(pre_failover=f"{sys.executable} -c \"open('{marker}', 'w')\"")
    return marker


def test_an_app_dir_this_user_cannot_write_is_refused_before_the_pre_hook(site: Site, hooked):
    os.chown(site.etc, NOBODY, -1)          # 0755, another owner: not writable without override
    proc = run_without_override(site, "failover")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "FAIL          app.link_dir" in out and "Traceback" not in out
    assert not hooked.exists()
    assert os.readlink(site.link) == site.original.decode()
    assert site.log()[-1]["outcome"] == "refused"
    assert not site.marker.exists()                       # no reload either


def test_a_state_dir_this_user_cannot_write_is_refused(site: Site, hooked):
    site.state.mkdir(exist_ok=True)
    os.chown(site.state, NOBODY, -1)
    proc = run_without_override(site, "failover")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "Traceback" not in out and "state_dir must be writable" in out
    assert not hooked.exists() and os.readlink(site.link) == site.original.decode()


def test_the_same_user_with_write_access_fails_over(site: Site, hooked):
    proc = run_without_override(site, "failover")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert hooked.exists() and os.readlink(site.link) == str(site.etc / "readonly.php")
