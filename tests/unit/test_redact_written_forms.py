"""A registered secret is masked whole in every form mirrord's own output writes it, and
what the state database stores is masked as status shows it.

Found by a review (helper-144), with an rsync target whose ssh_command held a password:
- redact applied its patterns before the registered values: `--password 'SECRET X'` came
  out `--password *** X`, the pattern stopping at the space and the value no longer whole
  for its own mask to find;
- kv() writes a field holding a space or quote as a JSON string, so a password holding a
  `\\` or a `"` reached the text log escaped (`pa\\\\ss...`), where a mask looking for the
  value as it is found nothing;
- the reconcile summary, ops.last_error and target_stats.last_error kept an ssh error
  quoting the password whole in the state database (every display of it was masked).
"""

from __future__ import annotations

import io
import json
import logging
import shlex
import sqlite3

import pytest

from mirrord import logsetup
from mirrord.journal import Change, Journal, Outcome
from mirrord.logsetup import kv, redact, redact_doc, register_secret, setup_logging
from mirrord.reconcile.result import PassSummary
from mirrord.reconcile.session import record
from mirrord.target_state import TargetState
from mirrord.trash.retention import Summary
from tests.fakes import Clock

SECRETS = ["SECRET SECRET123", 'pa"ss-SECRETSECRET123', "pa\\ssSECRETSECRET123",
           "pä'ss SECRETSECRET123", "new\nline-SECRETSECRET123", "tab\tSECRETSECRET123"]
IDS = ["space", "double quote", "backslash", "non-ascii and quote", "newline", "tab"]


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    """register_secret into registries of this test only."""
    monkeypatch.setattr(logsetup, "_extra_secrets", set())
    monkeypatch.setattr(logsetup, "_short_secrets", {})


def shows(text: str) -> bool:
    """Whether any part of a secret of SECRETS is left in `text`."""
    return "SECRETSECRET" in text or "SECRET123" in text


@pytest.mark.parametrize("secret", SECRETS, ids=IDS)
@pytest.mark.parametrize("shape", [
    lambda s: f"cannot connect: proxy args: --password {s}",      # a pattern's option first
    lambda s: f"got: {s}",
    lambda s: kv(msg="target not reachable", error=f"got: {s}"),  # a JSON-quoted field
    lambda s: f"internal error: {ValueError(s)!r}",                # an exception's repr
    lambda s: f"running {shlex.join(['ssh', '-o', 'ProxyCommand=x', s])}",
    lambda s: json.dumps({"msg": kv(error=s)}),                    # quoted twice
    lambda s: json.dumps(s),                                       # non-ASCII escaped
], ids=["after an option", "plain", "kv field", "repr", "shell-quoted", "twice", "ascii"])
def test_a_registered_secret_is_masked_whole_in_every_written_form(secret, shape):
    register_secret(secret)
    assert not shows(redact(shape(secret))), redact(shape(secret))


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("secret", SECRETS, ids=IDS)
def test_a_log_line_never_shows_a_registered_secret(secret, fmt):
    register_secret(secret)
    out = io.StringIO()
    setup_logging("info", fmt, stream=out)
    try:
        logging.getLogger("mirrord.test").warning(kv(
            msg="target not reachable at start; will retry", target="host",
            error=f"cannot connect: got: {secret}\nkex_exchange_identification"))
    finally:
        setup_logging("info", "text")
    assert "target not reachable" in out.getvalue()
    assert not shows(out.getvalue()), out.getvalue()


def test_a_short_secret_is_masked_as_a_quoted_field_even_escaped():
    register_secret('a"b')
    assert redact(kv(other='a"b')) == 'other="***"'


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_traceback_never_shows_a_registered_secret(fmt):
    """A traceback holds the exception's message, here a repr of the secret, and the log
    writes it JSON-quoted (`exc=`, the JSON log), ASCII-escaped in the text log: a secret
    with both quotes and a non-ASCII letter was left whole (a review, helper-146)."""
    secret = "zé'q\"SECRETSECRET1x"
    register_secret(secret)
    out = io.StringIO()
    setup_logging("info", fmt, stream=out)
    try:
        try:
            raise RuntimeError(f"boom {secret!r} {secret.encode()!r}")
        except RuntimeError:
            logging.getLogger("mirrord.test").exception("failed")
    finally:
        setup_logging("info", "text")
    assert "RuntimeError: boom" in out.getvalue() and not shows(out.getvalue()), out.getvalue()


@pytest.mark.parametrize("text", ["password=hunter22", "--password hunter22",
                                  "PGPASSWORD=hunter22 psql"])
def test_a_secret_inside_a_credential_key_leaves_the_key_its_pattern(text):
    """A registered `word` (or `pass`) is part of `password`: masked before the patterns,
    `pass***=hunter22` matched none of them and the other password was shown (helper-146)."""
    register_secret("word")
    register_secret("PASS")
    assert "hunter22" not in redact(text), redact(text)


def test_masking_first_leaves_the_patterns_their_work():
    """An unregistered credential after an option is still masked by the patterns, and a
    registered value inside a password= field leaves the line balanced."""
    register_secret("REGISTERED-SECRET-1")
    assert redact("--password other-pw x") == "--password *** x"
    assert redact('key="host=h password=REGISTERED-SECRET-1 dbname=d"') == \
        'key="host=h password=*** dbname=d"'


# ---------------------------------------------------------------- the state database

LEAK = "cannot connect: proxy args: --password PLAINSECRET123\nkex_exchange_identification"


def failed_once(tmp_path, path: str) -> tuple[str, str]:
    """A put of `path` that failed with LEAK: (ops.last_error, target_stats.last_error)."""
    clock = Clock()
    j = Journal(tmp_path / "journal.db", {"up": ("t",)}, clock=clock)
    try:
        j.enqueue([Change("up", path, "put")])
        (op,) = j.claim("t", 10, now=clock.now + 10_000)
        j.ack([Outcome(op, error=LEAK)])
        (row,) = j.db.execute("SELECT last_error FROM ops").fetchall()
        (stats,) = j.db.execute("SELECT last_error FROM target_stats").fetchall()
    finally:
        j.close()
    return row[0], stats[0]


def test_an_ops_error_is_stored_masked(tmp_path):
    stored = failed_once(tmp_path, "a.jpg")
    assert len(stored) == 2 and all("--password ***" in e for e in stored), stored
    assert not any("PLAINSECRET" in e for e in stored)
    assert b"PLAINSECRET" not in (tmp_path / "journal.db").read_bytes()


def test_a_reconcile_summary_is_stored_masked(tmp_path):
    j = Journal(tmp_path / "journal.db", {"up": ("t",)}, clock=Clock())
    try:
        summary = PassSummary(target="t", reason="manual", started_at=0.0, finished_at=1.0,
                              duration=1.0, errors=[f"host: {LEAK}"])
        record(j, summary)
        doc = j.get_state("reconcile:t")
    finally:
        j.close()
    assert "PLAINSECRET" not in json.dumps(doc) and "--password ***" in json.dumps(doc)
    with sqlite3.connect(tmp_path / "journal.db") as db:
        assert not any("PLAINSECRET" in v for (v,) in db.execute("SELECT value FROM kv"))


def test_a_targets_last_error_keeps_its_path_as_written(tmp_path):
    """The path is user data: only registered values are masked in it, never rewritten by
    a pattern (`docs/api_token=list.txt` was stored as `docs/api_token=*** ...`)."""
    _row, stored = failed_once(tmp_path, "docs/api_token=list.txt")
    assert stored.startswith("docs/api_token=list.txt: ") and "PLAINSECRET" not in stored


def test_a_retention_summary_and_a_target_state_hold_no_credential():
    assert "PLAINSECRET" not in json.dumps(Summary("t", 0.0, error=LEAK).to_state())
    state = TargetState("degraded", 0.0, f"heartbeat not written: {LEAK}", True)
    assert "PLAINSECRET" not in json.dumps(state.to_json()) and "--password ***" in state.reason
    assert redact_doc(state.to_json()) == state.to_json()
