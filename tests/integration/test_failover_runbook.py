"""The README runbook's examples, run where loopback allows: the floating-IP hook script
(`ip addr` on lo for real; `arping` recorded by a stand-in, as lo does not do ARP) and
keepalived's vrrp_script curl command against the real /ready."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_failover_health import Service
from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)

README = Path(__file__).resolve().parents[2] / "README.md"
VIP = "127.0.0.77/32"


def readme_block(start: str) -> str:
    text = README.read_text()
    m = re.search(r"```[a-z]*\n(" + re.escape(start) + r".*?)```", text, re.DOTALL)
    assert m, f"README has no code block starting with {start!r}"
    return m.group(1)


def on_lo() -> bool:
    out = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                         text=True, check=True).stdout
    return "127.0.0.77/32" in out


@pytest.fixture
def vip_script(tmp_path):
    script = readme_block("#!/bin/sh\n# /usr/local/sbin/wiki-vip")
    script = script.replace("192.0.2.10/24", VIP).replace("192.0.2.10", VIP.split("/")[0])
    script = script.replace("eth0", "lo")
    path = tmp_path / "wiki-vip"
    path.write_text(script)
    path.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "arping"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'arping.log'}\n")
    fake.chmod(0o755)
    yield path, bin_dir, tmp_path / "arping.log"
    subprocess.run(["ip", "addr", "del", VIP, "dev", "lo"], capture_output=True)


def test_the_floating_ip_moves_with_failover_and_failback(site: Site, vip_script, capsys,
                                                           monkeypatch):
    script, bin_dir, arping_log = vip_script
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin")
    site.configure(post_failover=f"{script} up", pre_failback=f"{script} down")
    assert not on_lo()
    assert site.run("failover") == 0, _output(capsys)
    assert on_lo()
    assert arping_log.read_text().split() == ["-U", "-c", "3", "-I", "lo", "127.0.0.77"]
    assert "vip up (failover, replay lag 0.000s)" in _output(capsys)
    assert site.run("failback") == 0, _output(capsys)
    assert not on_lo()


def test_keepalived_vrrp_script_follows_ready(site: Site, pg):
    svc = Service(site)
    try:
        block = readme_block("vrrp_script mirror_ready")
        command = re.search(r'script "([^"]+)"', block).group(1)
        argv = command.replace("127.0.0.1:9188", f"127.0.0.1:{svc.port}").split()
        assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
        pg.pause_replay()
        svc.wait_ready(503)
        assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 22  # curl -f
    finally:
        svc.close()


def test_haproxy_httpchk_request_is_answered(site: Site):
    block = readme_block("backend wiki_read")
    uri = re.search(r"http-check send meth GET uri (\S+)", block).group(1)
    svc = Service(site)
    try:
        assert svc.get(uri)[0] == 200
        assert svc.get(uri, "OPTIONS") == (200, b"")   # plain `option httpchk`
    finally:
        svc.close()
