"""A model URI the request names that is not ``s3://bucket/key`` is the client's error (400), before any S3 call."""

import pytest

from sd_runtime.errors import RequestError
from sd_runtime.models import ModelStore


def no_client():
    raise AssertionError("no S3 call for a URI that names no object")


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("https://bucket.s3.amazonaws.com/model.safetensors", "not an s3:// URI"),
        ("s3:///model.safetensors", "names a bucket"),
        ("s3://bucket", "must name a bucket and a key"),
        ("s3://bucket/", "must name a bucket and a key"),
    ],
)
def test_a_uri_that_names_no_object_is_refused_as_a_bad_request(tmp_path, uri, says):
    store = ModelStore(tmp_path, client_factory=no_client)
    with pytest.raises(RequestError, match=says) as refused:
        store.fetch(uri)
    assert refused.value.status == 400
