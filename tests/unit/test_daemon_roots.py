"""When a lost source root counts as back (mirrord.daemon_roots.root_back), the
stand-in watcher of a root missing at start, and the deletes that wait for a source's
comparison (Roots.await_start, Roots.compared; pure logic on a stand-in daemon). The daemon's side runs on real mounts in
tests/reliability/test_source_root_back.py."""

from __future__ import annotations

import select
from types import SimpleNamespace

from mirrord.daemon_roots import AbsentRoot, Roots, root_back
from mirrord.observe import SourceGuard


def test_a_missing_root_or_a_file_in_its_place_is_not_back(tmp_path):
    assert not root_back(str(tmp_path / "gone"))
    (tmp_path / "f").write_text("x")
    assert not root_back(str(tmp_path / "f"))


def test_an_empty_directory_is_never_back_whatever_its_numbers(tmp_path):
    """An empty tmpfs mounted again shows the st_dev the kernel freed and inode 1, and
    ext4 gives a directory made again the inode it freed: identity proves nothing."""
    root = tmp_path / "root"
    root.mkdir()
    assert not root_back(str(root))                 # the very directory, empty
    root.rmdir()
    root.mkdir()
    assert not root_back(str(root))
    (root / ".hidden").write_text("")               # anything at all in it
    assert root_back(str(root))


def test_a_symlinked_root_is_judged_by_what_it_points_at(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "x").write_text("x")
    (tmp_path / "link").symlink_to(real)
    assert root_back(str(tmp_path / "link"))
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert not root_back(str(tmp_path / "dangling"))


def test_the_stand_in_watcher_reports_nothing_and_never_wakes_the_loop():
    w = AbsentRoot()
    try:
        ready, _, _ = select.select([w.fileno()], [], [], 0)
        assert ready == []
        assert (w.read(0), w.settle(), w.rewatch(), w.unwatched_paths(5)) == ([], [], [], [])
        assert (w.watched, w.unwatched, w.next_deadline()) == (0, 0, None)
    finally:
        w.close()
    w.close()                                      # twice: nothing raised


# ------------------------------------------- deletes wait for the comparison (Roots)

class _Journal:
    def __init__(self):
        self.held: list[tuple[str, str]] = []
        self.retried: list[str] = []

    def hold_deletes(self, source, *, reason, since, exempt=0):
        self.held.append((source, reason))
        self.exempt = exempt

    def retry_now(self, target):
        self.retried.append(target)


def _daemon(tmp_path, names=("a", "b")):
    """A stand-in for the Daemon attributes Roots touches; real SourceGuards on real roots."""
    sources = {}
    for name in names:
        (tmp_path / name).mkdir()
        sources[name] = SimpleNamespace(name=name, path=tmp_path / name, targets=(f"t_{name}",))
    guards = {name: SourceGuard(str(src.path)) for name, src in sources.items()}
    scheduled: list[tuple[str, str]] = []
    d = SimpleNamespace(
        cfg=SimpleNamespace(sources=list(sources.values()), source=sources.__getitem__),
        shipper=SimpleNamespace(guards=guards), journal=_Journal(),
        alarms=SimpleNamespace(held=set()), catchups_pending=set(),
        counters=SimpleNamespace(root_lost=0), targets={f"t_{n}": object() for n in names},
        schedule_catch_up=lambda src, reason: scheduled.append((src.name, reason)))
    return d, guards, scheduled


def _result(source, reason, capped=()):
    return ("catchup", source, reason, SimpleNamespace(capped=capped, refused_deletes=len(capped) * 7,
                                                       capped_paths=7 if capped else 0))


def test_at_start_no_absence_is_a_delete_before_the_start_comparison(tmp_path):
    """A restart with a wrong file system holding files in the root's place: the changes
    queued before the stop must not go out as deletes before the comparison can tell."""
    d, guards, _ = _daemon(tmp_path)
    roots = Roots()
    roots.lost["b"] = "missing at start"
    guards["b"].lost = True
    roots.await_start(d, guards)
    assert roots.comparing == {"a": "start"}
    assert "comparison at start" in guards["a"].refusal("x.jpg")
    assert "x.jpg" in guards["a"].refusal("x.jpg")
    assert "missing, replaced or unmounted" in guards["b"].refusal("x.jpg")


def test_a_start_comparison_within_the_cap_lets_the_deletes_go_at_once(tmp_path):
    d, guards, _ = _daemon(tmp_path)
    roots = Roots()
    roots.await_start(d, guards)
    roots.compared(d, "catchup:a", _result("a", "start"))
    assert guards["a"].refusal("x.jpg") is None
    assert guards["b"].refusal("x.jpg") is not None          # its own comparison still runs
    assert d.journal.retried == ["t_a"] and d.journal.held == []
    assert roots.comparing == {"b": "start"}


def test_a_start_comparison_over_the_cap_holds_the_sources_deletes(tmp_path):
    d, guards, _ = _daemon(tmp_path)
    roots = Roots()
    roots.await_start(d, guards)
    roots.compared(d, "catchup:a", _result("a", "start", capped=("t_a",)))
    assert d.journal.held and d.journal.held[0][0] == "a"
    assert "lacked at start" in d.journal.held[0][1] and "max_delete" in d.journal.held[0][1]
    assert d.alarms.held == {"a"}
    assert d.journal.exempt == 7   # what the resume's comparison may let go: the refused paths
    assert guards["a"].refusal("x.jpg") is None   # the journal's hold covers it from here


def test_a_failed_start_comparison_is_queued_again_and_deletes_still_wait(tmp_path):
    d, guards, scheduled = _daemon(tmp_path)
    roots = Roots()
    roots.await_start(d, guards)
    roots.compared(d, "catchup:a", RuntimeError("walk failed"))
    assert scheduled == [("a", "start")]
    assert guards["a"].refusal("x.jpg") is not None
    roots.compared(d, "catchup:a", _result("a", "overflow"))   # another comparison: not it
    roots.compared(d, "subtree-check:a:x", _result("a", "start"))
    assert guards["a"].refusal("x.jpg") is not None and roots.comparing["a"] == "start"


def test_a_root_lost_during_its_start_comparison_waits_for_its_return(tmp_path):
    """The start's result arriving after the loss releases nothing: the return is
    compared anew (reason root-back)."""
    d, guards, _ = _daemon(tmp_path)
    roots = Roots()
    roots.await_start(d, guards)
    roots.lose(d, d.cfg.source("a"), "unmounted")
    roots.compared(d, "catchup:a", _result("a", "start"))
    assert guards["a"].lost and guards["a"].refusal("x.jpg") is not None
    assert "a" not in roots.comparing and d.journal.retried == []
