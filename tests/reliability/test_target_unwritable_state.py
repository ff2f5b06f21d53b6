"""A target no write can reach is never reported in_sync (mirrord/target_state.py rule 2).

The real daemon, the three real targets, idle and exact; then, behind mirrord's back, a
target's whole mirror goes (the local root or the mirror host's root removed, the bucket
emptied and deleted), or the daemon restarts with credentials the target refuses (a
rotated S3 secret, an ssh key the host does not take). Nothing is pending, so the state
was `in_sync` ("nothing pending") while every heartbeat write failed: status, /ready
and the metrics told other tools the mirror could take over (a breaker). Now the target
is `degraded`, "heartbeat not written: ...", naming no secret.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess

import boto3
import pytest

from tests.reliability.conftest import Env, live_only_config, poll

WRONG_SECRET = "WrongWrongWrong123"


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    e = Env(tmp_path, live_only_config(tmp_path, seaweedfs, sshd))
    try:
        yield e
    finally:
        e.close()


def in_sync_and_idle(env: Env) -> None:
    for i in range(5):
        (env.src / f"f{i}.jpg").write_bytes(b"x" * (100 + i))
    env.daemon.start()
    env.converge()
    poll(env.drained, timeout=60, what="the backlog drained")
    poll(lambda: all(t["state"] == "in_sync" for t in env.daemon.status()["targets"].values()),
         timeout=60, what="every target in_sync")


def remove_mirror(env: Env, name: str) -> None:
    cp = configparser.ConfigParser()
    cp.read(env.cfg)
    if name in ("local", "host"):
        shutil.rmtree(env.cfg.parent / cp[f"target:{name}"]["path"])   # relative: to the file
        return
    s = cp["target:s3"]
    client = boto3.client("s3", endpoint_url=s["endpoint_url"], region_name=s["region"],
                          aws_access_key_id=s["access_key_id"],
                          aws_secret_access_key=s["secret_access_key"])
    while keys := [{"Key": o["Key"]} for o in
                   client.list_objects_v2(Bucket=s["bucket"]).get("Contents", [])]:
        client.delete_objects(Bucket=s["bucket"], Delete={"Objects": keys})
    client.delete_bucket(Bucket=s["bucket"])


def degraded_for_its_heartbeat(env: Env, name: str) -> dict:
    poll(lambda: env.daemon.status()["targets"][name]["state"] == "degraded", timeout=60,
         what=f"{name} degraded")
    st = env.daemon.status()["targets"][name]
    assert st["state_reason"].startswith("heartbeat not written: "), st
    others = {n: t["state"] for n, t in env.daemon.status()["targets"].items() if n != name}
    assert set(others.values()) == {"in_sync"}, others
    return st


@pytest.mark.parametrize("name", ["local", "host", "s3"])
def test_a_whole_mirror_gone_with_nothing_pending_is_degraded(env, name):
    in_sync_and_idle(env)
    remove_mirror(env, name)
    degraded_for_its_heartbeat(env, name)


@pytest.mark.parametrize("name", ["s3", "host"])
def test_credentials_the_target_refuses_are_degraded_and_not_shown(env, tmp_path, name):
    in_sync_and_idle(env)
    assert env.daemon.stop() == 0
    text = env.cfg.read_text()
    if name == "s3":
        text = re.sub(r"(?m)^secret_access_key = .*$", f"secret_access_key = {WRONG_SECRET}",
                      text)
    else:
        other = tmp_path / "other_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                       check=True)
        text = re.sub(r"(?m)^ssh_key = .*$", f"ssh_key = {other}", text)
    env.cfg.write_text(text)
    env.daemon.start()
    st = degraded_for_its_heartbeat(env, name)
    assert WRONG_SECRET not in str(st) + env.log_text()


def remake_empty(env: Env, name: str) -> None:
    """The mirror made again, empty, where it was: a new root directory, a new bucket."""
    cp = configparser.ConfigParser()
    cp.read(env.cfg)
    if name == "host":
        (env.cfg.parent / cp["target:host"]["path"]).mkdir()
        return
    s = cp["target:s3"]
    boto3.client("s3", endpoint_url=s["endpoint_url"], region_name=s["region"],
                 aws_access_key_id=s["access_key_id"],
                 aws_secret_access_key=s["secret_access_key"]).create_bucket(Bucket=s["bucket"])


@pytest.mark.parametrize("name", ["host", "s3"])
def test_a_mirror_emptied_and_made_again_gets_no_heartbeat_until_a_pass_fills_it(env, name):
    """The mirror host's root removed and made again, the bucket deleted and created again:
    the next heartbeat landed in the empty place, status said in_sync and failover on the
    mirror host saw a fresh heartbeat, 0 pending, over none of the files (a breaker).
    Now the lost heartbeat is seen, none is written, the target is degraded, and the
    reconcile pass it asks for fills the mirror; then it is in sync and beats again."""
    in_sync_and_idle(env)
    target = env.targets[name]
    remove_mirror(env, name)
    remake_empty(env, name)
    poll(lambda: "is gone" in env.daemon.status()["targets"][name]["state_reason"],
         timeout=60, what=f"{name}: its lost heartbeat seen")
    assert env.daemon.status()["targets"][name]["state"] == "degraded"
    env.converge()   # the pass it asked for re-sent every file
    poll(lambda: env.daemon.status()["targets"][name]["state"] == "in_sync", timeout=90,
         what=f"{name} in sync again")
    poll(lambda: target.read_meta("heartbeat.json") is not None, timeout=30,
         what=f"a heartbeat on {name} again")
