"""The rsync-over-SSH target (`type = rsync`): a mirror host reached through one
persistent SSH connection.

target.py is the Target; connection.py the ssh master and its sessions (and
the cipher choice); remote.py the shell run on the host and the parsing of
what it prints; plan.py and batch.py the batched sync() (one rsync per group),
transfer.py one rsync run and the remote checks around it; trash.py, inrun.py and
keep_script.py keep_deleted (the trash under .mirrord/trash on the host);
root_guard.py the open's look at the root and the check of it before every command
(an unmounted mirror's bare mount point is never written).
"""

from mirrord.targets.rsync.connection import AES_FIRST_CIPHERS, cpu_has_aes
from mirrord.targets.rsync.target import RsyncTarget

__all__ = ["AES_FIRST_CIPHERS", "RsyncTarget", "cpu_has_aes"]
