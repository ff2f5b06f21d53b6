"""A keep whose place in the trash runs through a symlink planted INSIDE the trash, on the
targets whose root is a directory (local, rsync through a real sshd).

Shape: `.mirrord/trash/<stamp>.deleted -> /elsewhere` (or a link one level deeper, at
`<stamp>.deleted/d`) stands in the trash, then keep("d/f", stamp=<stamp>, coming="absent")
keeps the mirror's d/f. tests/targets/test_meta_dir_planted_symlink.py covers a link AT
`.mirrord/trash`; one below it is the same threat (whoever can write below the root), and
a stamp is a time to the microsecond, so a retried keep or a second keep of the same change
meets the directory an earlier one made.

What goes wrong (found by trying it), rsync: keep_script.KEEP_BODY refuses a symlinked
`.mirrord` or `.mirrord/trash` only; below them it runs `mkdir -p -- "${d%/*}"` and
`ln -- "$p" "$d"` (then `rm -f -- "$p"`) by path, so the mirror's file is linked into
/elsewhere/d/f and removed from the root: the kept bytes live outside the root (and
trash_list never shows them, find not following the link). Diagnosis: the place in the
trash is made with `mkdir -p`, which follows every symlinked component; it wants the
remote.MKDIRS walk (a link there replaced: the trash is mirrord's own area), as the local
target's LocalTrash._trash_parent makes it by descriptor. A put with keep_stamp runs the
same KEEP_BODY inside its rsync run (inrun.wrapper), so it has the same fault.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from mirrord.errors import PermanentError, RetryableError

from .test_conformance import put
from .test_local_put_walk import outside, snapshot  # noqa: F401 - outside: the fixture
from .test_planted_symlinks import dir_target, root_of  # noqa: F401 - dir_target: the fixture

STAMP = "20260101T000000.000000Z"


@pytest.mark.parametrize("at", ["", "/d"])
def test_a_keep_writes_nothing_through_a_symlink_in_the_trash(dir_target, at, tmp_path,
                                                              outside):
    t = dir_target
    put(t, tmp_path, "d/f", b"the mirror's")
    link = root_of(t) / ".mirrord" / "trash" / f"{STAMP}.deleted{at}"
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, link)
    before = snapshot(outside)
    # refusing to keep (an error) is acceptable; writing outside is not
    with contextlib.suppress(PermanentError, RetryableError):
        t.keep("d/f", stamp=STAMP, coming="absent")
    assert snapshot(outside) == before
