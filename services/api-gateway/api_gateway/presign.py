"""Presigned S3 URLs (SigV4) for the project's bucket, with an honest, bounded expiry.

The edge signs; it never touches the objects. A caller may ask for a shorter or longer expiry than the
default, never beyond the configured maximum (more is refused with 400).

A presigned URL lasts no longer than the credentials that signed it, whatever its ``X-Amz-Expires``
says: AWS documents that a URL signed with temporary credentials expires when they do, even if it was
created with a later expiration time
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html#PresignedUrl-Expiration,
https://repost.aws/knowledge-center/presigned-url-s3-bucket-expiration). On AWS the edge signs with its
Lambda function's execution-role credentials, which are temporary (a session token), and AWS publishes
no lifetime for them: Lambda "automatically assumes your execution role" and hands the function the
role's temporary credentials (https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html).
So when the signing credentials are temporary, a URL is granted at most
:data:`TEMPORARY_CREDENTIALS_MAX_EXPIRY_S` (one hour: AWS STS's documented default role session,
``DurationSeconds`` "By default, the value is set to 3600 seconds",
https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html), and no more than the
credentials have left where they say when they expire. The expiry granted is what the URL carries and
what the answer reports (``x-presigned-url-expires-in``). It is still an upper bound: credentials that
were issued a while before the signing expire sooner, so every URL is signed afresh on each read (a
job's outputs, a dataset's previews), and a client whose URL has expired reads it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

from sdmw_contracts.api.assets import MultipartUpload
from sdmw_contracts.events.assets import CheckpointFile
from service_kit import aws

#: The longest a URL is granted when it is signed with temporary credentials (a session token): AWS STS's
#: default role session (3600 s), as no lifetime of a Lambda function's credentials is published.
TEMPORARY_CREDENTIALS_MAX_EXPIRY_S = 3600
#: The response header saying for how many seconds the presigned URLs of an answer were granted.
EXPIRES_IN_HEADER = "x-presigned-url-expires-in"


class ExpiryTooLong(ValueError):
    pass


def sigv4_s3_client() -> Any:
    return aws.counted_client("s3", config=Config(signature_version="s3v4"))


def signing_credentials(s3: Any) -> Any:
    """The credentials ``s3`` signs with (botocore's ``Credentials``), or None when there are none."""
    own = getattr(s3, "_get_credentials", None)
    return own() if callable(own) else boto3.session.Session().get_credentials()


def temporary_cap_s(credentials: Any, now: datetime | None = None) -> int | None:
    """The longest a URL signed with ``credentials`` may honestly be granted; None when they are not
    temporary (no session token: an IAM user's keys, whose URLs last what they say, up to 7 days)."""
    if credentials is None or not credentials.get_frozen_credentials().token:
        return None
    cap = TEMPORARY_CREDENTIALS_MAX_EXPIRY_S
    expires_at = getattr(credentials, "_expiry_time", None)  # botocore's refreshable credentials say when
    if isinstance(expires_at, datetime):
        left = int((expires_at - (now or datetime.now(UTC))).total_seconds())
        cap = max(1, min(cap, left))
    return cap


class Presigner:
    def __init__(
        self,
        bucket: str,
        default_expiry_s: int,
        max_expiry_s: int,
        s3: Any = None,
        credentials: Callable[[], Any] | None = None,
    ) -> None:
        self.bucket = bucket
        self._default = default_expiry_s
        self._max = max_expiry_s
        self._s3 = s3 or sigv4_s3_client()
        #: Reads the signing credentials (each time: they change as they are refreshed).
        self._credentials = credentials or (lambda: signing_credentials(self._s3))

    def expiry(self, requested_s: int | None) -> int:
        """The seconds a URL signed now is granted: as asked (400 past the configured maximum), or the
        default; never more than temporary signing credentials allow (:func:`temporary_cap_s`)."""
        if requested_s is not None and requested_s > self._max:
            raise ExpiryTooLong(f"expires_in may be at most {self._max} seconds")
        wanted = min(self._default, self._max) if requested_s is None else requested_s
        cap = temporary_cap_s(self._credentials())
        return wanted if cap is None else min(wanted, cap)

    def upload_part_urls(self, key: str, upload_id: str, parts: int, expires_s: int) -> list[str]:
        return [
            self._s3.generate_presigned_url(
                "upload_part",
                Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
                ExpiresIn=expires_s,
            )
            for number in range(1, parts + 1)
        ]

    def multipart_uploads(self, files: Iterable[CheckpointFile], expires_s: int) -> list[MultipartUpload]:
        """Each file's open upload, with one presigned PUT URL per part, as ``s3PresignUrl`` lists them."""
        return [
            MultipartUpload(
                upload_id=file.upload_id or "",
                bucket=self.bucket,
                key=file.key,
                filename=file.filename,
                s3_signed_urls=self.upload_part_urls(file.key, file.upload_id or "", file.parts_number, expires_s),
            )
            for file in files
        ]

    def put_url(self, key: str, expires_s: int) -> str:
        return self._s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )

    def get_url(self, key: str, expires_s: int) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )
