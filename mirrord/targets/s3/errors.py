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


def classify_write(exc: BaseException, where: str) -> TargetError:
    """classify() of what a write through the SDK (PutObject, s3transfer's upload) raised,
    MaybeStored (mirrord.errors) when the request may have left whole with no answer
    back: botocore's ReadTimeoutError (the answer's read timed out: the request was
    sent) or ConnectionClosedError (closed with no answer). Only the last attempt's error
    is seen: a first attempt timed out, then a retry refused, reads as refused."""
    err = classify(exc, where)
    if type(err) is RetryableError and isinstance(exc, (ReadTimeoutError, ConnectionClosedError)):
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


