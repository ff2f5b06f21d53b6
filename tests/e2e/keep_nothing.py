"""The shared steps of the keep-nothing tests (test_rename_fallback_keeps_nothing.py,
test_versioned_moves_keep_nothing.py): write source files, wait for every target to
match the source, read what `mirrord trash --json` lists, start the daemon on files.

`timeout` is each bounded poll's limit in seconds (a poll, never a timed assertion);
`versioned` names a target whose trash must be kept by bucket versioning."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_trash_e2e import versioned_config
from tests.exactness import wait_exact
from tests.reliability.conftest import Env, excluded, poll


def versioned_and_local(tmp_path: Path, seaweedfs) -> Path:
    """versioned_config (a versioned bucket as target `s3`) with a local directory target
    `local` beside it on the same source, keep_deleted = 1d on both: the config's path."""
    cfg = versioned_config(tmp_path, seaweedfs)
    text = cfg.read_text().replace("targets = s3\n", "targets = s3, local\n")
    cfg.write_text(text + f"\n[target:local]\ntype = local\npath = {tmp_path / 'mirror'}\n"
                          "keep_deleted = 1d\n")
    return cfg


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def settle(env: Env, *, timeout: float) -> None:
    """The backlog drained and every target equal to the source, each within `timeout` s."""
    poll(env.drained, timeout=timeout, what="the backlog drained")
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=timeout, excluded=excluded)


def listed(env: Env, *, versioned: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """Per target: the sorted (path, why) `mirrord trash --json` lists (the user's view);
    AssertionError when target `versioned` does not keep by bucket versioning."""
    doc = json.loads(env.daemon.cli("trash", "--json").stdout)
    if versioned is not None:
        assert doc["targets"][versioned]["trash_mode"] == "versioning", doc
    return {name: sorted((e["path"], e["why"]) for e in t["entries"])
            for name, t in doc["targets"].items()}


def start_passes(env: Env) -> int:
    """How many targets the start's reconcile pass is done with (the daemon's log)."""
    return sum('msg="reconcile pass done"' in line and " reason=start " in line
               for line in env.log_text().splitlines())


def start(env: Env, files: dict[str, bytes], *, timeout: float,
          versioned: str | None = None) -> None:
    """Write `files` (path relative to the source -> bytes), start the daemon, settle, wait
    for the start's reconcile pass on every target, and check that no target lists
    anything kept yet. The pass is waited for: these tests are about what the live stream
    keeps, and a pass that compared in the middle of their renames is a shape of its own
    (tests/integration/test_exchange_then_proposals_keep_nothing.py and
    test_rename_then_proposals_keep_nothing.py, each order on every target type). Left to
    chance, it ran during the renames in about one CI run in three."""
    for rel, data in files.items():
        write(env.src / rel, data)
    env.daemon.start()
    settle(env, timeout=timeout)
    poll(lambda: start_passes(env) >= len(env.targets), timeout=timeout,
         what="the start's reconcile pass on every target")
    seen = listed(env, versioned=versioned)
    assert seen == {name: [] for name in env.targets}, seen
