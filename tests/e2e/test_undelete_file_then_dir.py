"""`mirrord undelete` of a name that was a file, then a directory: the newest change wins, and
the dry run says what the real run does (mirrord.trash.listing.choose).

A breaker's story through the real daemon and command, keep_deleted on the three real
targets: `a` written and deleted, then `a/` made with `a/b`, and `rm -rf a`. `undelete
--to-source --dry-run a` promised both (exit 0); the real run wrote the older file `a`
and refused the newer `a/b` ("a file stands on the way"), exit 1.
"""

from __future__ import annotations

import time

from tests.e2e.helpers import Mirrord, write_config
from tests.reliability.conftest import poll


def _drained(d: Mirrord) -> bool:
    return all(t["pending"] == 0 for t in d.status()["targets"].values())


def test_the_newest_change_at_a_name_is_put_back_and_the_dry_run_says_so(tmp_path, seaweedfs,
                                                                          sshd):
    cfg = write_config(tmp_path, seaweedfs, sshd, exclude="*.tmp")
    text = cfg.read_text()
    for kind in ("local", "s3", "rsync"):
        text = text.replace(f"type = {kind}\n", f"type = {kind}\nkeep_deleted = 1d\n")
    cfg.write_text(text)
    src = tmp_path / "src"
    (src / "base.txt").write_text("base\n")
    d = Mirrord(cfg, tmp_path / "d.log").start()
    try:
        steps = [lambda: (src / "a").write_text("i was a file\n"),
                 lambda: (src / "a").unlink(),
                 lambda: ((src / "a").mkdir(), (src / "a" / "b").write_text("inner\n")),
                 lambda: ((src / "a" / "b").unlink(), (src / "a").rmdir())]
        for step in steps:
            step()
            time.sleep(1.1)      # distinct change times, each shipped and kept in order
            poll(lambda: _drained(d), what="drained", timeout=60)
        dry = d.cli("undelete", "--to-source", "--dry-run", "a", check=False)
        real = d.cli("undelete", "--to-source", "a", check=False)
        assert (dry.returncode, real.returncode) == (0, 0), (dry.stdout, real.stdout, real.stderr)
        assert dry.stdout.count("would write:") == real.stdout.count("written:") == 1, \
            (dry.stdout, real.stdout)
        for out in (dry.stdout, real.stdout):
            assert "left in the trash: a (changed" in out and "at a/b is put back" in out, out
        assert (src / "a" / "b").read_text() == "inner\n"
    finally:
        d.stop()
