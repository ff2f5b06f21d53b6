"""The same `mirrord undelete` run twice: a restore is itself a change, so what it replaced
is kept under the restore's time and is then the newest version; the second run put it
back, undoing the first (a trial, helper-160: the encrypted bytes came back over the clean
ones). A path that already holds an earlier kept version again, by its bytes, is left as
it is, refused (exit 1, naming --newest: the bytes cannot tell a retry from that version
back otherwise, helper-163), unless --newest (--force is only for newer work in the
source): onto a target and into the source, also when the window (--since) no longer
holds the earlier version or this target's copy of it expired.

The target is the MemoryTarget (it passes the trash conformance suite like the real
targets); the real daemon and targets: tests/e2e/test_keep_shapes.py.
"""

from __future__ import annotations

import os
import time

import pytest

from mirrord.cli import main as cli_main
from mirrord.targets.memory import MemoryTarget
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

    replaced = max(k.when for k in fake.trash_list())
    for argv in (["undelete", "--dry-run", "site/up/a.doc"], ["undelete", "site/up/a.doc"]):
        assert cli_main.main(argv) == 1          # refused: the bytes cannot tell a retry
        out = capsys.readouterr().out
        assert out.startswith(f"refused: t:site/up/a.doc <- version of {listing.iso(replaced)}")
        assert f"already holds the earlier version of {listing.iso(T0 + 10)} again" in out
        assert "--newest" in out
        assert fake.read("site/up/a.doc") == CLEAN and len(fake.trash) == 2

    # --newest: the operator asks for exactly that version
    assert cli_main.main(["undelete", "--newest", "site/up/a.doc"]) == 0
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

    assert cli_main.main(["undelete", "--to-source", str(src)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"refused: {src} <- version of {listing.iso(changed + 1)}"), out
    assert f"already holds the earlier version of {listing.iso(changed)} again" in out
    assert src.read_bytes() == CLEAN
    # --force overwrites newer work, nothing more: a refusal elsewhere in the run advises
    # it, and with it the retry put back every version the first run replaced (helper-162)
    assert cli_main.main(["undelete", "--to-source", "--force", str(src)]) == 1
    assert src.read_bytes() == CLEAN
    assert cli_main.main(["undelete", "--to-source", "--newest", str(src)]) == 0
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


@pytest.mark.parametrize("side", ["target", "source"])
def test_a_retry_with_since_after_the_restored_version_leaves_it(fake, capsys, tmp_path, side):
    """`--since 2h` run again later: the window no longer holds the version the first run
    put back, only the one it replaced; that one was written (helper-162). The path holds
    the earlier version again, whatever the window: unchanged."""
    base = time.time() - 100
    src = tmp_path / "src" / "a.doc"
    src.write_bytes(ENCRYPTED)
    os.utime(src, ns=(int(base * NS),) * 2)
    # seen after the source file's ctime (to the source) or before the restore's own keep,
    # stamped with the clock (onto the target)
    changed = time.time() + (1 if side == "source" else -10)
    _encrypted(fake, base=base, changed=changed)
    where = [PATH] if side == "target" else ["--to-source", str(src)]
    assert cli_main.main(["undelete", *where]) == 0
    if side == "source":     # the daemon ships it, keeping what it replaced
        fake.keep(PATH, stamp=stamp_of(changed + 5), coming="file")
        fake.files[PATH] = Stored(CLEAN, int(base * NS), 0o640)
    replaced = max(k.when for k in fake.trash_list())
    capsys.readouterr()
    assert cli_main.main(["undelete", "--since", listing.iso(replaced), *where]) == 1
    assert "already holds the earlier version of" in capsys.readouterr().out
    assert fake.read(PATH) == CLEAN and (side == "target" or src.read_bytes() == CLEAN)


def test_targets_restored_first_then_the_source_gets_what_they_hold(fake, capsys, tmp_path):
    """The README's order after a failover: repair the mirror, then the source. The target
    restore kept what stood there (the encrypted bytes, as the newest version), which the
    source still holds: `--to-source` called it "unchanged" and left the source encrypted
    (helper-162). The version the target holds again is written."""
    base = time.time() - 100
    src = tmp_path / "src" / "a.doc"
    src.write_bytes(ENCRYPTED)
    os.utime(src, ns=(int(base * NS),) * 2)
    time.sleep(0.01)
    _encrypted(fake, base=base, changed=time.time())      # seen after the source's ctime
    time.sleep(0.01)
    assert cli_main.main(["undelete", PATH]) == 0           # the target first
    assert fake.read(PATH) == CLEAN
    capsys.readouterr()
    assert cli_main.main(["undelete", "--to-source", "--dry-run", str(src)]) == 0
    assert capsys.readouterr().out.startswith(f"would write: {src}")
    assert cli_main.main(["undelete", "--to-source", str(src)]) == 0
    assert capsys.readouterr().out.startswith(f"written: {src}")
    assert src.read_bytes() == CLEAN and src.stat().st_mtime_ns == int(base * NS)
    assert cli_main.main(["undelete", "--to-source", str(src)]) == 1     # and again: as is
    assert "refused" in capsys.readouterr().out and src.read_bytes() == CLEAN


def test_targets_restored_then_reconciled_then_the_source_is_refused_not_unchanged(
        fake, capsys, tmp_path):
    """helper-163: the targets restored, then a reconcile sent the still encrypted source
    again (the clean bytes kept again, the newest version), then `--to-source`: the source
    holds the encrypted version kept by the targets' restore, an earlier version again.
    The bytes cannot tell this from a retry: it was 'unchanged', exit 0, and the source
    stayed encrypted. Now refused, exit 1, naming --newest, which writes the clean bytes."""
    base = time.time() - 100
    src = tmp_path / "src" / "a.doc"
    src.write_bytes(ENCRYPTED)
    os.utime(src, ns=(int(base * NS),) * 2)
    time.sleep(0.01)
    _encrypted(fake, base=base, changed=time.time())
    time.sleep(0.01)
    assert cli_main.main(["undelete", PATH]) == 0                       # the targets
    fake.keep(PATH, stamp=stamp_of(time.time() + 1), coming="file")      # the reconcile
    fake.files[PATH] = Stored(ENCRYPTED, int(base * NS), 0o640)
    capsys.readouterr()
    assert cli_main.main(["undelete", "--to-source", str(src)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"refused: {src}") and "--newest" in out, out
    assert src.read_bytes() == ENCRYPTED
    assert cli_main.main(["undelete", "--to-source", "--newest", str(src)]) == 0
    assert src.read_bytes() == CLEAN


def test_another_target_s_versions_count_where_this_one_s_expired():
    """A target with a shorter keep_deleted no longer keeps the version put back: another
    target's copy of it is compared (its bytes fetched there), so the retry leaves it."""
    short, long_ = MemoryTarget("short"), MemoryTarget("long")
    for t in (short, long_):
        put(t, PATH, CLEAN, T0)
        t.keep(PATH, stamp=stamp_of(T0 + 10), coming="file")
        t.files[PATH] = Stored(ENCRYPTED, int(T0 * NS), 0o640)
        assert restore.restore_on_target(t, listing.choose(t.trash_list())[PATH],
                                         keep_first=True, now=T0 + 60).action == "restored"
    clean_kept = next(k for k in short.trash_list() if k.when == T0 + 10)
    del short.trash[clean_kept.key]                   # expired on `short`
    newest = listing.choose(short.trash_list())[PATH]
    assert newest.when == T0 + 60 and short.read(PATH) == CLEAN
    alone = restore.restore_on_target(short, newest, keep_first=True, now=T0 + 90,
                                      earlier=[(short, k) for k in short.trash_list()])
    assert alone.action == "restored" and short.read(PATH) == ENCRYPTED   # what it knew
    short.files[PATH] = Stored(CLEAN, int(T0 * NS), 0o640)
    both = [(t, k) for t in (short, long_) for k in t.trash_list()]
    out = restore.restore_on_target(short, newest, keep_first=True, now=T0 + 120, earlier=both)
    assert out.action == "refused" and short.read(PATH) == CLEAN


def test_a_journal_that_cannot_take_the_writes_fails_the_run(fake, capsys, tmp_path, cfg):
    """Daemon stopped, the state database damaged: the file is written, but the targets
    would not get it; one line says so, exit 1 (it was 0: helper-162)."""
    cfg.mirrord.journal_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.mirrord.journal_path.write_bytes(b"not a database" * 100)
    base = time.time() - 100
    src = tmp_path / "src" / "a.doc"
    src.write_bytes(ENCRYPTED)
    os.utime(src, ns=(int(base * NS),) * 2)
    _encrypted(fake, base=base, changed=time.time() + 1)
    assert cli_main.main(["undelete", "--to-source", str(src)]) == 1
    captured = capsys.readouterr()
    assert src.read_bytes() == CLEAN and captured.out.startswith("written: ")
    lines = [line for line in captured.err.splitlines() if "could not be queued" in line]
    assert len(lines) == 1 and "reconcile --checksum" in lines[0], captured.err
    assert "Traceback" not in captured.err


def test_again_takes_the_newest_earlier_version_held_and_only_older_ones():
    t = MemoryTarget("t")
    kept = [(t, k) for k in _versions()]
    newest = kept[-1][1]
    assert restore.again(newest, kept, lambda keeper, k: True) == kept[-2]
    assert restore.again(kept[0][1], kept, lambda keeper, k: True) is None   # none older
    assert restore.again(newest, kept, lambda keeper, k: False) is None


def _versions() -> list[Kept]:
    return [Kept("a", stamp_of(T0 + i), OVERWRITTEN, 1, 0, f"k{i}") for i in range(3)]


def test_all_matching_nothing_in_the_window_says_so(fake, capsys):
    """`--all --since 1s` with nothing kept since printed nothing (helper-162). One line
    now; still exit 0, as for a mirror with nothing kept (tests/unit/
    test_trash_text_names.py): everything asked for is done."""
    _encrypted(fake)                                   # kept in 2023
    assert cli_main.main(["undelete", "--all", "--since", "1s"]) == 0
    captured = capsys.readouterr()
    assert "nothing kept in the time asked (targets: t)" in captured.err
    assert fake.read(PATH) == ENCRYPTED
    assert cli_main.main(["undelete", "--all"]) == 0 and fake.read(PATH) == CLEAN
