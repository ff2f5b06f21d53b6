"""A reconcile pass never fills the mount point of a mirror whose file system is not mounted.

`mirrord reconcile`, with the daemon stopped, ships what it finds missing itself. A
target whose root its writable open found missing or holding nothing
(Target.found_empty: a bare mount point) while the journal records paths shipped there
looked to it like a mirror missing everything, and the pass sent the whole mirror into
the mount point, on the host's root file system (a breaker: the shipped hourly
mirrord-reconcile.timer does that unattended whenever mirrord.service is down). The
daemon's rule at its start is the same (mirrord.daemon_start.expects_mirror). Naming
the target (`--target NAME`) is the operator's way to refill a mirror emptied on purpose.
"""

from __future__ import annotations

from mirrord.config import Config
from mirrord.journal import Journal


def refuse_empty_root(journal: Journal | None, cfg: Config, target) -> str | None:
    """Why `target`, opened for writing, gets no pass: its root was missing or held
    nothing at open (Target.found_empty) while paths shipped to it are recorded: the
    mount point of a mirror whose file system is not mounted (a breaker: the hourly
    mirrord-reconcile.timer, run while the daemon was down, sent the whole mirror into
    it). None when it may be reconciled. `mirrord reconcile --target NAME` fills it."""
    from mirrord.daemon_start import expects_mirror   # the daemon's rule (its start)

    if journal is None or not target.found_empty or not expects_mirror(journal, cfg, target.name):
        return None
    return (f"{target.describe()}: the target root holds nothing while paths shipped to it "
            f"are recorded (is its file system mounted?): not reconciled; to fill a mirror "
            f"emptied on purpose, run mirrord reconcile --target {target.name}")
