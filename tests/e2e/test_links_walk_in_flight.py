"""A file renamed into the source while a hard link to it stands outside, found in flight
by the walk for new hard links: sent once (mirrord.journal.proposals).

The real `mirrord run` on the three real targets (test_stopped_changes' fixture: no
reconcile pass at any point). The file's put is held at the daemon's fault point
"shipped" (mirrord.faults: done on the target, not yet recorded) until the links walk,
which its second name asks for, has proposed it; then the worker is let go. Before,
the proposal moved the row on and the file went a second time (the large-file
benchmark measured twice the server's CPU for a 512 MiB file).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.test_crash_in_flight import TARGETS, faults, held  # noqa: F401 (fixture)
from tests.e2e.test_stopped_changes import env, start, write  # noqa: F401 (env: a fixture)
from tests.reliability.conftest import Env, poll


def shipped(env: Env, name: str) -> int:
    """Ops the daemon has acknowledged on target `name` since its state began."""
    return env.daemon.status()["targets"][name]["shipped"]


def links_walk_proposed_a_put(env: Env) -> bool:
    return any("reason=links" in line and '"put' in line
               for line in env.log_text().splitlines() if "catch-up done" in line)


PAD = 150   # more than LinkWalks' BACKLOG_LIMIT (100): the walk waits while they are queued


def pending(env: Env, name: str) -> int:
    return env.daemon.status()["targets"][name]["pending"]


def holds_below(faults, target: str, prefix: str) -> bool:
    """A worker of `target` has reached the fault point with a path below `prefix`."""
    reached = faults / "shipped.reached"
    return reached.exists() and any(line.startswith(f"{target} {prefix}")
                                    for line in reached.read_text().splitlines())


def held_in_flight_then_walked(env: Env, faults, name: str, *, rewrite: str = "") -> int:
    """linked.bin put on `name` and held there; the links walk made to wait until then by
    a backlog held on another target, then let run. Returns `name`'s acknowledged ops
    before linked.bin. `rewrite`: the file changes through its outside name while held
    ("write", or "mtime put back": the write's mtime then set back as it was)."""
    other = TARGETS[(TARGETS.index(name) + 1) % len(TARGETS)]
    write(env.src / "keep.jpg", b"kept")
    start(env)
    env.assert_exact(by="the catch-up")
    (faults / "shipped").write_text(f"{other} pad/*\n{name} linked.bin\n")
    for i in range(PAD):
        write(env.src / "pad" / f"{i}.jpg", b"p" * 100)
    poll(lambda: holds_below(faults, other, "pad/"), timeout=60, what="the backlog held")
    poll(lambda: pending(env, name) == 0, timeout=60, what=f"the pad files shipped to {name}")
    before = shipped(env, name)
    staged = env.tmp / "staged.bin"
    staged.write_bytes(os.urandom(300_000))
    os.link(staged, env.tmp / "outside.bin")      # the upload's second name, outside
    os.rename(staged, env.src / "linked.bin")     # asks for a links walk (nlink 2, one name)
    poll(lambda: held(faults, name, "linked.bin"), timeout=60, what="the put done, held")
    assert not links_walk_proposed_a_put(env), "the walk ran before the put was in flight"
    if rewrite:
        # no event names linked.bin; the write's own mtime tells the walk (a utime through
        # linked.bin would be an event, and an 'attr' op records the new mtime over the old
        # bytes on a target that already holds them: the README's "not covered" case)
        st = os.stat(env.src / "linked.bin")
        while os.stat(env.src / "linked.bin").st_mtime_ns == st.st_mtime_ns:
            time.sleep(0.02)
            with open(env.tmp / "outside.bin", "r+b") as fh:
                fh.write(b"rewritten through the outside name")
        if rewrite == "mtime put back":   # touch -r / rsync --inplace -t, through that name
            os.utime(env.tmp / "outside.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    (faults / "shipped").write_text(f"{name} linked.bin\n")   # the backlog drains
    poll(lambda: links_walk_proposed_a_put(env), timeout=60,
         what="the links walk proposing the file in flight")
    (faults / "shipped").unlink()                 # the worker goes on: its put is acked
    # The third target shipped linked.bin before the write and has nothing in flight: with
    # the mtime put back, its size and mtime match the source's, which no comparison by
    # size and mtime can tell (README: a write through a name outside every source root)
    names = (name, other) if rewrite == "mtime put back" else None
    env.assert_exact(by="the live stream", names=names)
    return before


@pytest.mark.parametrize("name", TARGETS)
def test_a_linked_file_found_in_flight_is_sent_once(env, faults, name):
    before = held_in_flight_then_walked(env, faults, name)
    assert shipped(env, name) - before == 1, env.log_text()[-3000:]


@pytest.mark.parametrize("rewrite", ["write", "mtime put back"])
@pytest.mark.parametrize("name", TARGETS)
def test_a_write_through_the_outside_name_while_in_flight_is_sent(env, faults, name, rewrite):
    """The other side of the rule: what changed after the worker's look goes out again,
    also when the writer put the mtime back (a breaker: on size and mtime alone the walk's
    look matched the worker's and the new bytes were lost for good)."""
    before = held_in_flight_then_walked(env, faults, name, rewrite=rewrite)
    assert shipped(env, name) - before == 2, env.log_text()[-3000:]
