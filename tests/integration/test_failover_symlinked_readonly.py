"""`readonly` that is itself a symlink (a deploy's releases/N/..., repointed by the next
deploy) is what the app link names after failover, as written in the INI file: the path
was resolved when the config was loaded, and the app stayed on the release that was
current then. Real PostgreSQL pair, real memcached."""

from __future__ import annotations

import os

from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


def test_the_link_names_a_symlinked_readonly_as_configured(site: Site, capsys):
    releases = site.root / "releases"
    for n in (1, 2):
        (releases / str(n)).mkdir(parents=True)
        (releases / str(n) / "readonly.php").write_text(f"<?php // release {n}\n")
    stable = site.etc / "readonly-current.php"
    os.symlink(releases / "1" / "readonly.php", stable)
    site.configure(readonly=str(stable))
    assert site.run("failover") == 0, _output(capsys)
    assert os.readlink(site.link) == str(stable)
    os.unlink(stable)                                  # the next deploy
    os.symlink(releases / "2" / "readonly.php", stable)
    assert site.link.read_text() == "<?php // release 2\n"
    assert site.run("failover") == 0                   # still read-only: nothing to change
    assert "already points at" in _output(capsys)
    assert site.run("failback") == 0
    assert os.readlink(site.link) == site.original.decode()
