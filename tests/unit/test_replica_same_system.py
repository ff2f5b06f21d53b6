"""replica_judge.same_system: the mirror's database and the primary as one cluster (pure)."""

from __future__ import annotations

import pytest

from mirrord.failover.force import force_hint, forceable
from mirrord.failover.replica_judge import SYSTEM_CHECK, same_system
from mirrord.failover.result import FAIL, WARN, Check

A, B = 7716343959228025683, 7316343959228025601   # bigint: kept whole as text


def _read(replica: int | None, primary: int | None, *, replica_ok: bool = True,
          primary_ok: bool = True) -> list[Check]:
    def data(ident):
        return {} if ident is None else {"system_identifier": str(ident)}
    return [Check("primary.connect", primary_ok, "p", "reachable",
                  data={"lsn": "0/1", **data(primary)}),
            Check("replica.connect", replica_ok, "r", "reachable", data=data(replica))]


@pytest.mark.parametrize("failback", [False, True])
def test_one_cluster_is_one_ok_check(failback):
    [check] = same_system(_read(A, A), failback=failback)
    assert (check.name, check.ok, check.value) == (SYSTEM_CHECK, True, str(A))


def test_another_cluster_refuses_switchover_and_names_both():
    [check] = same_system(_read(A, B), failback=False)
    assert check.refuses and check.severity == FAIL
    assert str(A) in check.line() and str(B) in check.line()
    assert "another cluster than the primary" in check.message
    assert check.data == {"replica": str(A), "primary": str(B)}
    assert force_hint("switchover", [check]) == ""


def test_another_cluster_refuses_failback_and_force_accepts_it():
    [check] = same_system(_read(A, B), failback=True)
    assert check.refuses and forceable(check)
    assert "made anew" in check.message and "cannot take over again" in check.message
    assert force_hint("failback", [check]) == "; rerun with --force to accept"


@pytest.mark.parametrize("replica,primary,unread", [
    (None, A, "the mirror's database"),   # pg_control_system() revoked on the replica
    (A, None, "the primary"),             # ... on the primary
    (None, None, "the mirror's database and the primary"),
])
def test_unreadable_is_said_not_compared_and_refuses_nothing(replica, primary, unread):
    [check] = same_system(_read(replica, primary), failback=False)
    assert (check.ok, check.value, check.severity) == (False, "not compared", WARN)
    assert not check.refuses and "grant EXECUTE" in check.line()
    assert f"not readable on {unread} by" in check.data["reason"]


@pytest.mark.parametrize("replica_ok,primary_ok", [(False, True), (True, False)])
def test_a_failed_connect_is_no_check(replica_ok, primary_ok):
    assert same_system(_read(A, B, replica_ok=replica_ok, primary_ok=primary_ok),
                       failback=False) == []


def test_primary_not_checked_is_no_check():
    checks = [Check("primary.connect", True, "not checked", "-",
                    data={"reason": "primary_database is not set"}),
              Check("replica.connect", True, "r", "reachable",
                    data={"system_identifier": str(A)})]
    assert same_system(checks, failback=True) == []


def test_nothing_read_is_no_check():
    assert same_system([], failback=True) == []
