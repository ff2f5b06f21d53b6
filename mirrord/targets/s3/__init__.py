"""The S3 target (`type = s3`), the only package that imports boto3.

target.py is the Target; upload.py its put and deletes.py its delete; keys.py
which paths S3 can store and the metadata formats; errors.py the classification
of failures; listing.py the listing and the multipart uploads a crash left open;
copy.py move and set_meta, vmove.py a move on a versioned bucket; trash.py
keep_deleted (keep, trash list/purge/restore/fetch); versioning.py bucket
versioning (the noncurrent versions as the kept copies); client.py the botocore client, lean.py the lean
transport for small puts and deletes and endpoint.py where it sends them;
batch.py sync(), with a batch's deletes in DeleteObjects.
"""

import os

# botocore signs with awscrt's signer whenever awscrt is installed (botocore.compat.HAS_CRT),
# and it is, for lean.py's signatures (signing.py). That signer reads a multipart part's
# body through a Python callback: when s3transfer cancels the other parts of a failed
# upload, awscrt prints each callback's traceback to stderr itself ("Treating Python
# exception as error"), raw lines in a structured log (a breaker killed the server during
# a 300 MB upload: 12 of them). botocore's own opt-out, read when botocore is first
# imported (this package is the only importer), keeps the SDK on its Python signer, as
# before awscrt was a dependency; signing.py calls awscrt directly and is not affected.
os.environ.setdefault("BOTO_DISABLE_CRT", "true")

from mirrord.targets.s3.errors import classify, scrub, shown  # noqa: E402
from mirrord.targets.s3.keys import (  # noqa: E402
    content_type, format_mode, format_mtime, parse_mode)
from mirrord.targets.s3.listing import is_aws  # noqa: E402
from mirrord.targets.s3.target import S3Target  # noqa: E402

__all__ = ["S3Target", "classify", "content_type", "format_mode", "format_mtime", "is_aws",
           "parse_mode", "scrub", "shown"]
