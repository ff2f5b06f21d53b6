"""[mirrord] log_level = debug: one line per op a worker finished, per watcher event and per
subtree check proposal, so that a path the mirror got wrong can be followed through a
run's log; nothing of it at info."""

from __future__ import annotations

import logging

from mirrord.catchup import catch_up
from mirrord.errors import RetryableError
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper, serial
from tests.unit.test_pipeline import Picky
from tests.unit.test_reconcile import source


def _run(tmp_path, caplog, level):
    src = source(tmp_path, {"d/a.jpg": b"a", "d/b.jpg": b"b"})
    target = Picky()
    target.open()
    target.refuse["d/b.jpg"] = RetryableError("503 from the server")
    journal = Journal(tmp_path / "journal.db", {"up": ("memory",)})
    shipper = Shipper({"memory": target}, [src], {"memory": 1}, executor=serial)
    try:
        journal.enqueue([Change("up", "d/a.jpg", "put"), Change("up", "d/b.jpg", "put")])
        with caplog.at_level(level):
            journal.ack(shipper.run_ops(target, journal.claim("memory", 10)))
            catch_up(journal.path, src, ["memory"], lambda _chunk: None, subtree="d")
    finally:
        shipper.shutdown()
        journal.close()
    return [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]


def test_each_op_and_each_proposal_is_one_debug_line(tmp_path, caplog):
    lines = _run(tmp_path, caplog, logging.DEBUG)
    done = [x for x in lines if x.startswith('msg="op done"')]
    failed = [x for x in lines if x.startswith('msg="op failed"')]
    assert len(done) == 1 and "path=d/a.jpg" in done[0] and "kind=put" in done[0]
    assert "did=put" in done[0] and "target=memory" in done[0]
    assert len(failed) == 1 and "path=d/b.jpg" in failed[0] and "503 from the server" in failed[0]
    assert any(x.startswith('msg="subtree check"') and "path=d " in x for x in lines)
    proposed = [x for x in lines if x.startswith('msg="subtree check proposes"')]
    assert len(proposed) == 1 and "path=d/b.jpg" in proposed[0]   # a.jpg is shipped


def test_nothing_of_it_at_info(tmp_path, caplog):
    assert _run(tmp_path, caplog, logging.INFO) == []
