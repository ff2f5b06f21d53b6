"""replica_judge.same_system: the mirror's database and the primary as one cluster (pure)."""

from __future__ import annotations

import pytest

from mirrord.failover.force import force_hint, forceable
from mirrord.failover.replica_judge import SYSTEM_CHECK, same_system
from mirrord.failover.result import FAIL, Check

A, B = 7716343959228025683, 7316343959228025601   # bigint: kept whole as text


def _read(replica: int | None, primary: int | None, *, replica_ok: bool = True,
          primary_ok: bool = True) -> list[Check]:
    def data(ident):
        return {} if ident is None else {"system_identifier": str(ident)}
    return [Check("primary.connect", primary_ok, "p", "reachable", data=data(primary)),
            Check("replica.connect", replica_ok, "r", "reachable", data=data(replica))]


@pytest.mark.parametrize("failback", [False, True])
def test_one_cluster_is_one_ok_check(failback):
    [check] = same_system(_read(A, A), failback=failback)
    assert (check.name, check.ok, check.value) == (SYSTEM_CHECK, True, str(A))


def test_another_cluster_refuses_switchover_and_names_both():
    [check] = same_system(_read(A, B), failback=False)
    assert check.refuses and check.severity == FAIL
    assert str(A) in check.line() and str(B) in check.line()
    assert "different clusters" in check.message
    assert check.data == {"replica": str(A), "primary": str(B)}
    assert force_hint("switchover", [check]) == ""


def test_another_cluster_refuses_failback_and_force_accepts_it():
    [check] = same_system(_read(A, B), failback=True)
    assert check.refuses and forceable(check)
    assert "made anew" in check.message and "cannot take over again" in check.message
    assert force_hint("failback", [check]) == "; rerun with --force to accept"


@pytest.mark.parametrize("replica,primary,replica_ok,primary_ok", [
    (None, A, True, True),        # pg_control_system() revoked on the replica
    (A, None, True, True),        # ... on the primary
    (None, None, True, True),
    (A, B, False, True),          # a failed connect's data is no reading
    (A, B, True, False),
])
def test_unknown_is_no_check(replica, primary, replica_ok, primary_ok):
    assert same_system(_read(replica, primary, replica_ok=replica_ok,
                             primary_ok=primary_ok), failback=False) == []


def test_nothing_read_is_no_check():
    assert same_system([], failback=True) == []
