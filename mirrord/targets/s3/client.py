"""The S3 target's connection: one botocore client, and the lean transport beside it.

How it talks to S3:

- One botocore client per target, shared by every worker thread (clients are
  thread-safe; sessions are not, so the session is only used, under a lock, to
  build the client). Its pool holds enough connections for all workers.
  Checksums only where S3 requires them (no CRC of every body) and no
  client-side parameter validation (every request is built here; keys are
  checked for UTF-8 and length before sending): together ~0.7 ms less CPU per
  small put than boto3's defaults (2.3 -> 1.6 ms, measured against SeaweedFS),
  and that CPU is what limits small-file throughput. Short connect and read
  timeouts, one retry at most: the shipper does its own backoff.
- Files below min(multipart_threshold, 8 MiB) are read whole and sent with one
  PutObject, the cheapest request. That request and DeleteObject go through
  mirrord.targets.s3.lean: signed by botocore's signer, sent on a kept-alive
  connection, without the SDK's per-call pipeline (0.5 instead of 2.2 ms of CPU
  per 4 KiB put); any answer but success, "retry later" or 412 (a conditional
  put's condition failed) is asked again through the full client, which then
  answers for good. Larger ones go through s3transfer, which
  uses multipart at or above multipart_threshold. S3 makes either atomic: a
  multipart object appears only on CompleteMultipartUpload, and s3transfer
  aborts the upload when a part fails.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.handlers import add_expect_header

from mirrord.config import S3Options
from mirrord.logsetup import kv
from mirrord.targets.s3.errors import follow_writes, scrub
from mirrord.targets.s3.lean import LeanRequests
from mirrord.targets.s3.timestamps import install as install_timestamp_parser

log = logging.getLogger("mirrord.targets.s3")

SMALL_FILE = 8 << 20            # read whole and sent with one PutObject below this
TRANSFER_CONCURRENCY = 4        # parts in flight per large upload
# Parts a large upload holds in memory at once (s3transfer's max_in_memory_upload_chunks,
# 10 by default): the 4 in flight and 2 read ahead, plus the one part s3transfer has read
# and waits to submit (its upload.py reads each part in yield_upload_part_bodies before
# submit() takes a slot of IN_MEMORY_UPLOAD_TAG): 7. At most upload.LARGE_UPLOADS (8) run
# at once per target, so a target's worst case is 8 x 7 x multipart_chunksize (896 MiB at
# the default 16 MiB parts). Measured on a 512 MiB file to SeaweedFS in 8 MiB parts,
# alternating, 4 each: 3.8 s and 48 MiB of peak RSS at 6 against 4.1 s and 80 MiB at 10.
TRANSFER_PARTS_IN_MEMORY = TRANSFER_CONCURRENCY + 2


def make_client(opts: S3Options, *, workers: int, connect_timeout: float, read_timeout: float,
                name: str, secrets: list[str]) -> tuple[Any, LeanRequests | None]:
    """A botocore S3 client for `opts` (timeouts in seconds, a pool for `workers` threads)
    and the lean transport made from it, or None where it cannot be used. `name` and
    `secrets` are for the debug line saying why (credentials masked)."""
    o = opts
    config = Config(
        region_name=o.region or None,
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": 2},
        max_pool_connections=max(10, workers + 2 * TRANSFER_CONCURRENCY),
        tcp_keepalive=True,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        parameter_validation=False,   # we build every request ourselves; saves ~15% CPU a put
        s3={"addressing_style": o.addressing_style},
    )
    core = botocore.session.get_session()   # a new one: the parser below is ours alone
    install_timestamp_parser(core)   # a listing's LastModified: timestamps.py
    session = boto3.session.Session(
        aws_access_key_id=o.access_key_id or None,
        aws_secret_access_key=o.secret_access_key or None,
        region_name=o.region or None, botocore_session=core)
    client = session.client("s3", endpoint_url=o.endpoint_url or None,
                            verify=o.ca_bundle or None, config=config)
    # PutObject bodies are small and in memory: `Expect: 100-continue` only adds a round
    # trip per object (14% of a 4 KiB burst's time in the profile). UploadPart keeps it.
    client.meta.events.unregister("before-call.s3.PutObject", add_expect_header)
    follow_writes(client)   # a write's attempt that may have stored it: errors.MaybeStored
    try:
        lean = LeanRequests.for_client(client, session.get_credentials(), o.bucket,
                                       connect_timeout=connect_timeout,
                                       read_timeout=read_timeout, ca_bundle=o.ca_bundle)
    except Exception as exc:  # noqa: BLE001 - the full client still works; it will say why
        log.debug(kv(msg="lean requests not used", target=name,
                     error=scrub(f"{type(exc).__name__}: {exc}", secrets)))
        lean = None
    return client, lean


def transfer_config(threshold: int, chunksize: int) -> TransferConfig:
    """s3transfer's settings: multipart at or above `threshold` bytes, `chunksize` parts,
    at most TRANSFER_PARTS_IN_MEMORY parts read into memory per upload, and the one read
    and waiting for a slot."""
    config = TransferConfig(multipart_threshold=threshold, multipart_chunksize=chunksize,
                            max_concurrency=TRANSFER_CONCURRENCY,
                            preferred_transfer_client="classic")
    # not a keyword of boto3's TransferConfig; an attribute of s3transfer's, which it extends
    config.max_in_memory_upload_chunks = TRANSFER_PARTS_IN_MEMORY
    return config
