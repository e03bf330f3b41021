"""Presigned S3 URLs (SigV4) for the project's bucket, with bounded expiry.

The edge signs; it never touches the objects. A caller may ask for a shorter
or longer expiry than the default, never beyond the configured maximum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.config import Config

from sdmw_contracts.api.assets import MultipartUpload
from sdmw_contracts.events.assets import CheckpointFile
from service_kit import aws


class ExpiryTooLong(ValueError):
    pass


def sigv4_s3_client() -> Any:
    return aws.counted_client("s3", config=Config(signature_version="s3v4"))


class Presigner:
    def __init__(self, bucket: str, default_expiry_s: int, max_expiry_s: int, s3: Any = None) -> None:
        self.bucket = bucket
        self._default = default_expiry_s
        self._max = max_expiry_s
        self._s3 = s3 or sigv4_s3_client()

    def expiry(self, requested_s: int | None) -> int:
        if requested_s is None:
            return min(self._default, self._max)
        if requested_s > self._max:
            raise ExpiryTooLong(f"expires_in may be at most {self._max} seconds")
        return requested_s

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
