"""One redaction for every JSON mirrord writes (logsetup.redact_doc): /ready, status
--json, failover.log.

Before: `mirrord health` served its JSON unredacted, failover.log redacted values but not
keys and wrote any other object through json's default=str unredacted, and the replica's
description (`host:port/dbname user=`) showed a dbname that is itself a URI with its
password (libpq accepts `dbname='postgresql://u:pw@h/db'`).
"""

from __future__ import annotations

import json
from pathlib import Path

from mirrord.failover.replica import describe
from mirrord.failover.result import Check, Run, append_log
from mirrord.logsetup import Verbatim, redact_doc

PW = "Zk9qH-secret"


class Opaque:
    def __str__(self) -> str:
        return f"conninfo host=db password={PW}"


def test_every_string_key_and_object_of_a_document_is_redacted():
    doc = {f"postgresql://u:{PW}@h": [f"password={PW}", 3, 1.5, None, True],
           "nested": {"t": (f"curl -u a:{PW}",), "o": Opaque(), "p": Path(f"/x/password={PW}")},
           "file": Verbatim("password=1.jpg")}
    shown = json.dumps(redact_doc(doc))
    assert PW not in shown
    back = json.loads(shown)
    assert "postgresql://***@h" in back
    assert back["nested"]["o"] == "conninfo host=db password=***"
    assert back["file"] == "password=1.jpg"           # user data: only registered values
    assert back["postgresql://***@h"][1:] == [3, 1.5, None, True]


def test_failover_log_redacts_keys_and_objects_too(tmp_path):
    run = Run("failover", dry_run=True)
    run.checks.append(Check("replica.connect", False, "unreachable",
                            data={f"postgresql://u:{PW}@h": Opaque()}))
    append_log(tmp_path, run, host="h")
    text = (tmp_path / "failover.log").read_text()
    assert PW not in text
    json.loads(text)


def test_the_replica_description_masks_a_dbname_that_is_a_uri():
    shown = describe(f"host=127.0.0.1 port=1 dbname='postgresql://mirrord:{PW}@127.0.0.1:1/wiki'")
    assert shown == "127.0.0.1:1/postgresql://***@127.0.0.1:1/wiki user="
    assert describe("host=db port=5433 dbname=wiki user=app") == "db:5433/wiki user=app"


def test_the_systemd_status_line_is_redacted():
    from mirrord import notify

    line = notify.status(f"degraded: cannot reach postgresql://u:{PW}@db/wiki\n password={PW}")
    assert PW not in line and line.startswith("STATUS=") and "\n" not in line
