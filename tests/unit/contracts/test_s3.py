"""S3 URIs, split the one way every service, the runtime and the local SageMaker split them."""

import pytest

from sdmw_contracts.s3 import split_s3_uri


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("s3://bucket/key.json", ("bucket", "key.json")),
        ("s3://bucket/out/job-1/result/image-0.jpg", ("bucket", "out/job-1/result/image-0.jpg")),
        ("s3://bucket/dataset/dogs/", ("bucket", "dataset/dogs/")),
        ("s3://bucket/a//b", ("bucket", "a//b")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket", ("bucket", "")),
    ],
)
def test_a_uri_splits_into_its_bucket_and_its_key_as_written(uri, parts):
    assert split_s3_uri(uri) == parts


@pytest.mark.parametrize("uri", ["", "bucket/key", "https://bucket.s3.amazonaws.com/key", "S3://bucket/key", "s3://", "s3:///key"])
def test_anything_but_an_s3_uri_with_a_bucket_is_refused(uri):
    with pytest.raises(ValueError, match="s3://"):
        split_s3_uri(uri)
