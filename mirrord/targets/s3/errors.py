"""How the S3 target classifies what boto3, botocore and urllib3 raise, and how its
messages stay free of credentials.

Errors (mirrord.targets.base states the contract):

| what                                                          | raised         |
|---------------------------------------------------------------|----------------|
| connection refused/reset, timeouts, EndpointConnectionError,  | RetryableError |
| a broken response stream, HTTP 5xx, 408, 429, SlowDown,       |                |
| Throttling, RequestTimeout, InternalError, ServiceUnavailable |                |
| NoSuchBucket (a MirrorRootMissing: failover refuses it),      | PermanentError |
| AccessDenied, InvalidAccessKeyId,                             |                |
| SignatureDoesNotMatch, KeyTooLongError, InvalidArgument, any  |                |
| other 4xx, missing credentials, a name that is not UTF-8 or   |                |
| whose key is longer than 1024 bytes                           |                |
| 412 to a conditional write (the key is not as its condition   | Precondition-  |
| said; only puts that keep by condition send one, and they     | Failed, a      |
| catch it: conditional.py)                                     | PermanentError |
| 409 ConditionalRequestConflict (a conditional write raced     | RetryableError |
| another write of the key: AWS says retry)                     |                |
| a put sent whole with no answer back (a read timeout, closed  | MaybeStored, a |
| or reset after the body left: lean.py, classify_write)        | RetryableError |
| 404 / NoSuchKey on stat, read, read_meta, delete (HEAD has no | None / nothing |
| body, so stat cannot tell a deleted bucket from a missing key)|                |
| nothing at the source of a move                               | NotFound       |
| a purged kept copy or version (NoSuchKey, NoSuchVersion) on   | NotFound       |
| trash restore or fetch                                        |                |

Messages say which target, operation and path; they are built from the error
code and message only, and every configured credential is masked, so no access
key, secret or signature ever appears in one.
"""

from __future__ import annotations

import os
import re
from typing import Any

from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import (ConnectionClosedError, CredentialRetrievalError,
                                 HTTPClientError, IncompleteReadError, NoCredentialsError,
                                 ParamValidationError, PartialCredentialsError,
                                 ReadTimeoutError)
from urllib3.exceptions import HTTPError as Urllib3Error

from mirrord.errors import (MaybeStored, MirrorRootMissing, PermanentError, RetryableError,
                            TargetError)
from mirrord.logsetup import redact
from mirrord.targets.failures import classify_oserror

RETRYABLE_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequests",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled",
    "RequestThrottledException", "BandwidthLimitExceeded", "RequestTimeout",
    "RequestTimeoutException", "InternalError", "ServiceUnavailable", "ServiceUnavailableException",
    "OperationAborted", "PriorRequestNotComplete", "EC2ThrottledException",
    # 409 to a conditional write that raced another write or delete of the key; "retry"
    # (AWS S3 User Guide, "How to prevent object overwrites with conditional writes")
    "ConditionalRequestConflict",
})
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})   # a purged version
# mimetypes gives no type for compressed files ("x.gz" -> (None, 'gzip')): name the container.

_SIGNED = re.compile(r"(?i)(signature\w*|credential|awsaccesskeyid|x-amz-security-token|"
                     r"security-?token|access-?key-?id)\s*=\s*[^&\s,;\"']+")


class PreconditionFailed(PermanentError):
    """HTTP 412 to a conditional request (If-None-Match / If-Match): the key is not as the
    condition said. Permanent if it ever escapes: repeating the same request gets 412 again."""


def shown(path: str) -> str:
    """A path quoted for a message; one that is not UTF-8 is shown as its bytes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return repr(os.fsencode(path))
    return repr(path)


def scrub(text: str, secrets: list[str]) -> str:
    """Mask credentials and request signatures in a message (belt and braces)."""
    text = _SIGNED.sub(r"\1=***", redact(text))
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def error_code(exc: ClientError) -> tuple[str, int]:
    err = exc.response.get("Error") or {}
    meta = exc.response.get("ResponseMetadata") or {}
    return str(err.get("Code") or ""), int(meta.get("HTTPStatusCode") or 0)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc)[0] in NOT_FOUND_CODES


def is_retryable(code: str, status: int) -> bool:
    return code in RETRYABLE_CODES or status >= 500 or status in (408, 429)


# botocore's errors of a request that may have left whole with no answer back: the
# answer's read timed out (the request was sent), or the connection closed with none
_NO_ANSWER = (ReadTimeoutError, ConnectionClosedError)
# The SDK's writes that make an object visible (an UploadPart does not: only the completion)
_WRITES = ("PutObject", "CompleteMultipartUpload")
_MAYBE_STORED = "mirrord_maybe_stored"   # set on the call's context, then on its exception


def follow_writes(client: Any) -> None:
    """Make `client` (a botocore S3 client) remember, per call of a write (_WRITES), an
    attempt that may have stored it, and mark the error the call finally raises with it:
    botocore retries (total_max_attempts) and raises only the last attempt's error, so a
    first attempt that timed out and a retry refused read as refused (classify_write).
    Uses botocore's events: needs-retry (each attempt's caught exception and the call's
    request_dict, whose `context` is the call's) and after-call-error (the exception
    raised, with that context)."""
    for op in _WRITES:
        client.meta.events.register(f"needs-retry.s3.{op}", _note_attempt)
        client.meta.events.register(f"after-call-error.s3.{op}", _mark_error)
        client.meta.events.register(f"after-call.s3.{op}", _mark_answer)


def _note_attempt(caught_exception: BaseException | None = None,
                  request_dict: dict | None = None, **_: Any) -> None:
    if isinstance(caught_exception, _NO_ANSWER) and request_dict is not None:
        context = request_dict.get("context")
        if isinstance(context, dict):
            context[_MAYBE_STORED] = True


def _mark_error(exception: BaseException | None = None, context: dict | None = None,
                **_: Any) -> None:
    if exception is not None and context and context.get(_MAYBE_STORED):
        setattr(exception, _MAYBE_STORED, True)


def _mark_answer(http_response: Any = None, parsed: dict | None = None,
                 context: dict | None = None, **_: Any) -> None:
    """after-call: the last attempt was answered. An error answer (a 503 to the retry of a
    put whose first attempt timed out) becomes the ClientError's `response`, `parsed`
    (botocore raises it after this event, not after-call-error): mark it there."""
    if (context and context.get(_MAYBE_STORED) and isinstance(parsed, dict)
            and getattr(http_response, "status_code", 0) >= 300):
        parsed[_MAYBE_STORED] = True


def _marked(exc: BaseException) -> bool:
    """Whether follow_writes marked `exc` (an exception raised, or an error answer)."""
    if getattr(exc, _MAYBE_STORED, False):
        return True
    return isinstance(exc, ClientError) and bool(exc.response.get(_MAYBE_STORED))


def classify_write(exc: BaseException, where: str) -> TargetError:
    """classify() of what a write through the SDK (PutObject, s3transfer's upload) raised,
    MaybeStored (mirrord.errors) when an attempt of a call that makes the object visible
    (PutObject, CompleteMultipartUpload; not an UploadPart: s3transfer aborts the upload)
    may have left whole with no answer back (follow_writes marked it), whatever the last
    attempt raised or was answered (refused, 503; NoSuchUpload to a completion sent
    again), short of another permanent error. ConnectionClosedError
    cannot tell a reset before the body left from a close after the server stored it, so
    it counts as maybe stored: the safe side (a put marked landed that was not stored
    only makes the alarm count it, and a mkdir over its name wait for the keys below)."""
    err = classify(exc, where)
    if not _marked(exc):
        return err
    # NoSuchUpload to a completion retried after one that may have completed the upload
    if type(err) is RetryableError or (isinstance(exc, ClientError)
                                       and error_code(exc)[0] == "NoSuchUpload"):
        return MaybeStored(str(err))
    return err


def classify(exc: BaseException, where: str) -> TargetError:
    """Map anything boto3/botocore/urllib3 raises to Retryable or Permanent.

    The message is built from the error code and S3's message only (never the
    request, its headers or str() of a botocore exception with its kwargs)."""
    if isinstance(exc, TargetError):
        return exc
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        message = str((exc.response.get("Error") or {}).get("Message") or "")
        text = f"{where}: {code or 'error'} (HTTP {status})" + (f": {message}" if message else "")
        if status == 412 or code == "PreconditionFailed":
            return PreconditionFailed(text)
        if code == "NoSuchBucket":   # the mirror's root is gone: failover refuses, as for a
            return MirrorRootMissing(text)   # local or rsync root that does not exist
        return (RetryableError if is_retryable(code, status) else PermanentError)(text)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, ParamValidationError)):
        return PermanentError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError,
                        CredentialRetrievalError, Urllib3Error, ConnectionError, TimeoutError)):
        return RetryableError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, OSError):
        err = classify_oserror(exc)
        return type(err)(f"{where}: {err}")
    return PermanentError(f"{where}: {type(exc).__name__}: {exc}")  # other BotoCoreError, bugs


