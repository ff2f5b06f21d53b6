"""The read-only config named in the INI file changes between two failovers (a new
file, a renamed one): the second failover repoints the link, and failback still restores
exactly what was there before the first. The second run recorded the first one's
read-only link as "the original", and failback left the site read-only."""

from __future__ import annotations

import os

from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


def test_failback_restores_the_original_after_two_failovers_to_different_readonly(site: Site,
                                                                                 capsys):
    second = site.etc / "readonly-v2.php"
    second.write_text("<?php $wgReadOnly = 'maintenance';\n")
    assert site.run("failover") == 0
    site.configure(readonly=str(second))
    assert site.run("failover") == 0, _output(capsys)
    assert os.readlink(site.link) == str(second)
    assert site.run("failback") == 0, _output(capsys)
    assert os.readlink(site.link) == site.original.decode()


def test_failback_after_the_readonly_path_changed_without_a_second_failover(site: Site, capsys):
    assert site.run("failover") == 0
    second = site.etc / "readonly-v2.php"
    second.write_text("<?php $wgReadOnly = 'maintenance';\n")
    site.configure(readonly=str(second))               # the link still names the first
    assert site.run("failback") == 0, _output(capsys)
    assert os.readlink(site.link) == site.original.decode()
