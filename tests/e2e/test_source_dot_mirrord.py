"""A source (dest empty) holding a `.mirrord` of its own at its root: the name of every
target's own area (heartbeat, staging, trash), which no mirrored path may enter
(mirrord.targets.paths.check_relpath, Target.cannot_hold).

Found by trying it as a user, on a local target: `mkdir src/.mirrord; rmdir src/.mirrord`
left the target degraded for good: the mkdir was refused (right: the mirror cannot hold
it), and so was the delete of what was never sent, retried with backoff, then "stalled",
through restarts, its heartbeat saying 1 pending (switchover refuses), while `mirrord
reconcile` said in sync. The refusal is kept while the source holds the name; once it
holds nothing there, the rows are done (mirrord.ship_rules.unholdable, as for another
source's area). A rename out of `.mirrord` sends the new name; a rename into it removes
the old name once the source's `.mirrord` is gone. The real `mirrord run`, the three
targets (local, S3 on SeaweedFS, rsync over ssh), and the targets' own areas untouched.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.reliability.conftest import Env, poll, write_config

NAMES = ("local", "s3", "host")


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    # no reconcile pass: the live stream alone is to leave the targets exact
    e = Env(tmp_path, write_config(tmp_path, seaweedfs, sshd,
                                   extra="\n[reconcile]\nat_start = no\nevery = off"))
    e.src.mkdir(exist_ok=True)
    (e.src / "keep.txt").write_bytes(b"kept all along")
    e.daemon.start()
    e.converge()
    yield e
    e.daemon.stop()
    for target in e.targets.values():
        target.close()


def _refused_on_every_target(env: Env) -> None:
    """Every target reports the source's `.mirrord` as a change it cannot hold: failing,
    shown in its status (the mirror is not exact while the source holds it)."""
    def shown():
        doc = env.daemon.status()["targets"]
        return all(doc[n]["failing"] >= 1 and "own area" in json.dumps(doc[n]) for n in NAMES)
    poll(shown, what="the source's .mirrord refused and shown on every target")


def _own_areas_intact(env: Env) -> None:
    for name, target in env.targets.items():
        assert target.read_meta("heartbeat.json") is not None, name


def test_a_dot_mirrord_made_and_removed_leaves_every_target_in_sync(env):
    (env.src / ".mirrord").mkdir()
    _refused_on_every_target(env)
    (env.src / ".mirrord").rmdir()
    env.assert_exact()
    (env.src / ".mirrord").write_bytes(b"a file of that name")
    _refused_on_every_target(env)
    (env.src / ".mirrord").unlink()
    env.assert_exact()
    (env.src / ".mirrord" / "sub").mkdir(parents=True)
    (env.src / ".mirrord" / "sub" / "f.jpg").write_bytes(b"inside")
    (env.src / ".mirrord" / "g.jpg").write_bytes(b"inside too")
    _refused_on_every_target(env)
    shutil.rmtree(env.src / ".mirrord")
    env.assert_exact()
    states = {n: t["state"] for n, t in env.daemon.status()["targets"].items()}
    assert states == {n: "in_sync" for n in NAMES}, states
    _own_areas_intact(env)


def test_renames_into_and_out_of_a_dot_mirrord(env):
    """A shipped file renamed to `.mirrord`: refused while it stands there, then removed:
    the old name goes from the targets too. A `.mirrord` tree renamed to an ordinary
    name: sent whole under it (nothing stood at the old name on any target)."""
    (env.src / "a.jpg").write_bytes(b"shipped first")
    env.converge()
    os.rename(env.src / "a.jpg", env.src / ".mirrord")
    _refused_on_every_target(env)
    (env.src / ".mirrord").unlink()
    env.assert_exact()
    (env.src / ".mirrord" / "x").mkdir(parents=True)
    (env.src / ".mirrord" / "x" / "f.jpg").write_bytes(b"made inside, then renamed out")
    _refused_on_every_target(env)
    os.rename(env.src / ".mirrord", env.src / "m")
    env.assert_exact()
    states = {n: t["state"] for n, t in env.daemon.status()["targets"].items()}
    assert states == {n: "in_sync" for n in NAMES}, states
    _own_areas_intact(env)
