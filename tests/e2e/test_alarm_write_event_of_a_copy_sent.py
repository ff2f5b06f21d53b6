"""A write event that finds the target holding, or getting, exactly the file as the write
left it counts no overwrite (mirrord.journal.first_copies), through the real `mirrord
run` process, fault point "shipped" (mirrord.faults) and both watchers.

A new file's put is read and stored on the target and held before its ack; then the file
is opened for writing and closed with nothing written (a close_write event: PHP's
fopen($f, 'a') then fclose, a log rotation's reopen): nothing on the target is replaced.
The code before counted the put in flight (1), and after the ack the shipped copy (1
more). The write events of a comparison's or a slow writer's copy, read late, are this
shape by timing (tests/integration/test_alarm_first_copies.py has each, deterministic).
A rewrite in place since counts 1 (an append would not: mirrord.appends).
"""

from __future__ import annotations

from tests.e2e.helpers import wait_converged
from tests.e2e.test_alarm_daemon import held_setup, poll   # noqa: F401 - the fixture, both watchers


def test_a_write_event_of_the_version_sent_counts_nothing(held_setup):
    tmp, daemon, target, faults = held_setup
    src, mirror = tmp / "src", tmp / "mirror"
    daemon.start()
    wait_converged(src, target)

    def count() -> int:
        return (daemon.status()["sources"]["uploads"]["alarm_detail"] or {}).get("count", 0)

    def read_after(n: int) -> None:
        """Every event before now recorded (and counted): a marker written after it is
        on the target (one watcher stream, read in order)."""
        (src / f"marker{n}").write_bytes(b"m")
        poll(f"marker{n} mirrored", lambda: (mirror / f"marker{n}").exists(), daemon)

    (faults / "shipped").write_text("local new.bin\n")
    (src / "new.bin").write_bytes(b"a new upload")
    poll("the put stored, held", lambda: (faults / "shipped.reached").exists(), daemon)
    assert (mirror / "new.bin").read_bytes() == b"a new upload"
    with open(src / "new.bin", "r+b"):   # opened for writing, closed, nothing written
        pass
    read_after(1)
    assert count() == 0                       # the copy landing is the file as it is
    (faults / "shipped").unlink()
    wait_converged(src, target)
    poll("acked", lambda: daemon.status()["targets"]["local"]["pending"] == 0, daemon)
    with open(src / "new.bin", "r+b"):
        pass
    read_after(2)
    assert count() == 0                       # the target's first copy, as it is
    with open(src / "new.bin", "r+b") as fh:   # a rewrite in place replaces that copy
        fh.write(b"A NEW")
    read_after(3)
    assert poll("the overwrite counted", count, daemon) == 1
    wait_converged(src, target)
