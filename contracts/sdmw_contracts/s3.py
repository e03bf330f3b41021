"""S3 URIs, read the one way every service, the runtime and the local SageMaker read them."""

from __future__ import annotations

SCHEME = "s3://"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``("bucket", "key")``.

    The key is everything after the bucket's slash, kept as written (a prefix keeps its trailing
    slash); it is empty for ``s3://bucket`` and ``s3://bucket/``, which name the whole bucket.
    Anything that is not an ``s3://`` URI with a bucket raises ``ValueError``.
    """
    if not uri.startswith(SCHEME):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len(SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"an s3:// URI names a bucket: {uri!r}")
    return bucket, key
