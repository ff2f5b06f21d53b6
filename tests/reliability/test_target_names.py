"""A user's file named like mirrord's old temp files is mirrored like any other, on the
three real targets, by the real daemon and the real `mirrord reconcile` (issue 14).

Found in a trial: `.mirrord-tmp-*` files were mirrored live, then re-sent by every
reconcile (the local target's listing hid them) and never deleted from the target
when deleted at the source.
"""

from __future__ import annotations

import json

NAMES = [".mirrord-tmp-foo.jpg", "sub/.mirrord-tmp-bar.png", "sub/.mirrord-stage-0a1b2c3d4e5f6a7b"]


def counts(env, *args: str) -> dict[str, dict]:
    res = env.daemon.cli("reconcile", "--json", *args)
    return {name: {k: doc[k] for k in ("missing", "changed", "extra")}
            for name, doc in json.loads(res.stdout)["targets"].items()}


def test_temp_like_names_are_mirrored_in_sync_and_deleted_on_every_target(env):
    env.daemon.start()
    (env.src / "keep.txt").write_bytes(b"stays: a source that empties looks unmounted")
    for name in NAMES:
        path = env.src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"a user's own file: " + name.encode())
    env.converge()                      # listed and read back on local, s3 and rsync
    assert env.daemon.stop() == 0

    nothing = {"missing": 0, "changed": 0, "extra": 0}
    assert counts(env, "--dry-run") == {name: nothing for name in env.targets}

    for name in NAMES:                  # deleted at the source while no daemon runs
        (env.src / name).unlink()
    found = counts(env, "--delete")
    assert {name: c["extra"] for name, c in found.items()} == {name: 3 for name in env.targets}
    for target in env.targets.values():
        assert [target.stat(name) for name in NAMES] == [None] * len(NAMES), target.name
    env.converge()
    assert counts(env, "--dry-run") == {name: nothing for name in env.targets}
