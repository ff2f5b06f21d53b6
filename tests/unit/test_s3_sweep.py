"""abort_open_uploads (the S3 target's sweep at open()) against stubbed answers: what
it aborts, and that a policy or server that refuses the API does not stop the target.
The same sweep against a real SeaweedFS: tests/integration/test_s3_target.py."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from mirrord.config import S3Options
from mirrord.errors import RetryableError
from mirrord.targets.s3 import S3Target


def target() -> S3Target:
    return S3Target("s3", S3Options(bucket="bucket", prefix="up/", endpoint_url="http://127.0.0.1:9",
                                    region="us-east-1", access_key_id="AKIAEXAMPLE",
                                    secret_access_key="secret-example", addressing_style="path"))


def test_every_upload_under_the_prefix_is_aborted_page_by_page():
    t = target()
    with Stubber(t.client) as stub:
        stub.add_response("list_multipart_uploads",
                          {"Uploads": [{"Key": "up/a", "UploadId": "1"}], "IsTruncated": True,
                           "NextKeyMarker": "up/a", "NextUploadIdMarker": "1"},
                          {"Bucket": "bucket", "Prefix": "up/"})
        stub.add_response("abort_multipart_upload", {},
                          {"Bucket": "bucket", "Key": "up/a", "UploadId": "1"})
        stub.add_response("list_multipart_uploads",
                          {"Uploads": [{"Key": "up/b c", "UploadId": "2"}], "IsTruncated": False},
                          {"Bucket": "bucket", "Prefix": "up/", "KeyMarker": "up/a",
                           "UploadIdMarker": "1"})
        stub.add_client_error("abort_multipart_upload", "NoSuchUpload", http_status_code=404,
                              expected_params={"Bucket": "bucket", "Key": "up/b c",
                                               "UploadId": "2"})   # gone meanwhile: fine
        assert t.abort_open_uploads() == 2
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("code,status", [("AccessDenied", 403), ("NotImplemented", 501)])
def test_a_refused_listing_of_uploads_leaves_the_target_usable(code, status, caplog):
    t = target()
    with Stubber(t.client) as stub:
        stub.add_client_error("list_multipart_uploads", code, http_status_code=status)
        with caplog.at_level("WARNING", logger="mirrord.targets.s3"):
            assert t.abort_open_uploads() == 0
    assert code in caplog.text and "secret-example" not in caplog.text


def test_a_server_error_while_sweeping_is_retryable():
    t = target()
    with Stubber(t.client) as stub:
        stub.add_client_error("list_multipart_uploads", "InternalError", http_status_code=500)
        with pytest.raises(RetryableError, match="abort open uploads"):
            t.abort_open_uploads()
