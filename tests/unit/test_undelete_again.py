"""The same `mirrord undelete` run twice: a restore is itself a change, so what it replaced
is kept under the restore's time and is then the newest version; the second run put it
back, undoing the first (a trial, helper-160: the encrypted bytes came back over the clean
ones). A path that already holds an earlier kept version again, by its bytes, is left
'unchanged' unless --force: onto a target, and into the source.

The target is the MemoryTarget (it passes the trash conformance suite like the real
targets); the real daemon and targets: tests/e2e/test_keep_shapes.py.
"""

from __future__ import annotations

import os
import time

import pytest

from mirrord.cli import main as cli_main
from mirrord.trash import listing, restore
from mirrord.trash.model import OVERWRITTEN, Kept, stamp_of
from tests.unit.test_undelete import NS, T0, Stored, cfg, fake, put  # noqa: F401 (fixtures)

CLEAN, ENCRYPTED = b"clean bytes", b"ENCRYPTED!!"        # the same length
PATH = "site/up/a.doc"


def _encrypted(target, *, base: float = T0, changed: float = T0 + 10) -> None:
    """A clean file of mtime `base` encrypted in place, seen at `changed` (the clean bytes
    kept then), its size and mtime kept."""
    put(target, PATH, CLEAN, base, 0o640)
    target.keep(PATH, stamp=stamp_of(changed), coming="file")
    target.files[PATH] = Stored(ENCRYPTED, int(base * NS), 0o640)


def test_a_second_target_restore_leaves_the_restored_version(fake, capsys):
    _encrypted(fake)
    assert cli_main.main(["undelete", "site/up/a.doc"]) == 0
    assert fake.read("site/up/a.doc") == CLEAN
    assert "restored: t:site/up/a.doc" in capsys.readouterr().out
    # the encrypted bytes are kept now, under the restore's time: the newest version
    assert [fake.trash[k.key][0] for k in listing.kept_under(fake, [""])] == [ENCRYPTED, CLEAN]

    for argv in (["undelete", "--dry-run", "site/up/a.doc"], ["undelete", "site/up/a.doc"]):
        assert cli_main.main(argv) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"unchanged: t:site/up/a.doc <- version of {listing.iso(T0 + 10)}")
        assert "already holds this earlier version again" in out and "--force" in out
        assert fake.read("site/up/a.doc") == CLEAN and len(fake.trash) == 2

    # --force: the operator asks for exactly that version
    assert cli_main.main(["undelete", "--force", "site/up/a.doc"]) == 0
    assert fake.read("site/up/a.doc") == ENCRYPTED


def test_a_second_restore_into_the_source_leaves_the_restored_version(fake, capsys, tmp_path):
    base = time.time() - 100
    src = tmp_path / "src" / "a.doc"
    src.write_bytes(ENCRYPTED)
    os.utime(src, ns=(int(base * NS),) * 2)           # the mtime put back, ctime now
    changed = time.time() + 1                          # the encryption seen after it
    _encrypted(fake, base=base, changed=changed)
    assert cli_main.main(["undelete", "--to-source", str(src)]) == 0
    assert src.read_bytes() == CLEAN and src.stat().st_mtime_ns == int(base * NS)
    # what the daemon then does: ship it, keeping what it replaces under the ship's time
    fake.keep("site/up/a.doc", stamp=stamp_of(changed + 1), coming="file")
    fake.files["site/up/a.doc"] = Stored(CLEAN, int(base * NS), 0o640)
    capsys.readouterr()

    assert cli_main.main(["undelete", "--to-source", str(src)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"unchanged: {src} <- version of {listing.iso(changed)}"), out
    assert "already holds this earlier version again" in out and src.read_bytes() == CLEAN
    assert cli_main.main(["undelete", "--to-source", "--force", str(src)]) == 0
    assert src.read_bytes() == ENCRYPTED


@pytest.mark.parametrize("side", ["target", "source"])
def test_other_bytes_under_an_earlier_version_size_and_mtime_are_restored(fake, tmp_path, side):
    """Only the very bytes of an earlier version count: a file with its size and mtime and
    other bytes (the encrypted one, mtime put back) is restored as asked."""
    base = time.time() - 100
    src = tmp_path / "src" / "a.doc"
    src.write_bytes(ENCRYPTED)
    os.utime(src, ns=(int(base * NS),) * 2)
    now = time.time()
    put(fake, PATH, b"first bytes", base, 0o640)           # the same size and mtime
    fake.keep(PATH, stamp=stamp_of(now + 1), coming="file")
    fake.files[PATH] = Stored(CLEAN, int(base * NS), 0o640)
    _encrypted(fake, base=base, changed=now + 2)           # CLEAN kept, the newest
    if side == "target":
        assert cli_main.main(["undelete", PATH]) == 0
        assert fake.read(PATH) == CLEAN
    else:
        assert cli_main.main(["undelete", "--to-source", str(src)]) == 0
        assert src.read_bytes() == CLEAN


def test_since_bounds_the_versions_a_path_may_hold_again(fake, capsys):
    """--since ignores versions changed before it, here too: the path holding a version
    from before the window is no reason to leave it."""
    _encrypted(fake)
    assert cli_main.main(["undelete", "site/up/a.doc"]) == 0      # CLEAN back, ENCRYPTED kept
    restored_at = max(k.when for k in fake.trash_list())
    assert cli_main.main(["undelete", "--since", listing.iso(restored_at),
                          "site/up/a.doc"]) == 0
    assert fake.read("site/up/a.doc") == ENCRYPTED


def test_again_takes_the_newest_earlier_version_held_and_only_older_ones():
    kept = [listing.choose([k])[k.path] for k in _versions()]
    newest = kept[-1]
    held = restore.again("t:a", newest, kept, lambda k: True)
    assert held is not None and held.kept == kept[-2] and held.action == "unchanged"
    assert restore.again("t:a", kept[0], kept, lambda k: True) is None   # none older
    assert restore.again("t:a", newest, kept, lambda k: False) is None


def _versions() -> list[Kept]:
    return [Kept("a", stamp_of(T0 + i), OVERWRITTEN, 1, 0, f"k{i}") for i in range(3)]
