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

from mirrord.targets.s3.errors import classify, scrub, shown
from mirrord.targets.s3.keys import content_type, format_mode, format_mtime, parse_mode
from mirrord.targets.s3.listing import is_aws
from mirrord.targets.s3.target import S3Target

__all__ = ["S3Target", "classify", "content_type", "format_mode", "format_mtime", "is_aws",
           "parse_mode", "scrub", "shown"]
