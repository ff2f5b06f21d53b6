"""list(prefix) on the targets whose root is a directory must not list what lies outside
the root through a symlink planted in the mirror at a component of the prefix, nor
through one swapped in while the call runs.

Shapes and what goes wrong:
- rsync, planted: `ln -> /elsewhere` on the host, list('ln/sub') returns ln/sub and
  ln/sub/deep - the outside directory's entries with their sizes, mtimes and modes, as
  the mirror's (a reconcile of that subtree takes them for files the mirror holds). The
  local target returns nothing, as stat/read already do on both.
- local, swapped: list('p') looks at 'p' (stat: by descriptor), then walks it; between the
  two, 'p' is moved away and a symlink to outside put there (monkeypatched, as
  tests/targets/test_local_put_walk.py makes its races deterministic): the outside files
  are listed as p/victim, p/sub.

Diagnosis: rsync: mirrord/targets/rsync/target.py RsyncTarget.list runs
`find ./<prefix>` after only `[ -e ] || [ -L ]`, no `nolink` (find does not follow its
starting point, but the kernel follows every component before it). Local:
mirrord/targets/local.py LocalTarget.list walks `os.path.join(self.root, prefix)` by path
(treewalk.walk(base, ...)); walk's own `below=` (reached without following a symlink,
treewalk._open_start) is not used.
"""

from __future__ import annotations

import os

from mirrord.targets.local import LocalTarget

from .test_local_put_walk import local, on_disk, put  # noqa: F401
from .test_planted_symlinks import dir_target, outside, plant  # noqa: F401


def test_a_prefix_below_a_planted_symlink_lists_nothing(dir_target, outside):  # noqa: F811
    plant(dir_target, "ln", outside)
    listed = [e.path for e in dir_target.list("ln/sub")]
    assert listed == []


def test_a_prefix_swapped_for_a_symlink_lists_nothing_outside(local, tmp_path, outside,  # noqa: F811
                                                              monkeypatch):
    put(local, tmp_path, "p/mine", b"mine")
    real_stat = LocalTarget.stat

    def stat_then_swap(self, path):
        got = real_stat(self, path)
        if path == "p" and not os.path.islink(on_disk(local, "p")):
            os.rename(on_disk(local, "p"), on_disk(local, "moved"))
            os.symlink(outside, on_disk(local, "p"))
        return got
    monkeypatch.setattr(LocalTarget, "stat", stat_then_swap)
    listed = {e.path for e in local.list("p")}
    assert not listed & {"p/victim", "p/sub", "p/sub/deep"}, listed
