"""The project bucket as the owners of uploads use it: multipart uploads and object checks.

asset-registry (checkpoints, datasets) and training-manager (model and
training inputs) both complete the uploads clients make through presigned
URLs, and verify them, the same way.

``complete_upload`` is safe to repeat: if an earlier attempt already completed
the upload (and crashed before recording it), the object is there and its size
is what it answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from botocore.exceptions import ClientError

from sdmw_contracts.events.assets import PartTag
from service_kit import aws


class UploadRefused(ValueError):
    """The client's parts do not complete the upload; the parts stay for a retry."""


class Storage(Protocol):
    bucket: str

    def start_upload(self, key: str) -> str: ...
    def complete_upload(self, key: str, upload_id: str, parts: Sequence[PartTag], parts_number: int) -> int: ...
    def abort_upload(self, key: str, upload_id: str) -> None: ...
    def object_size(self, key: str) -> int | None: ...
    def objects_under(self, prefix: str) -> dict[str, int]: ...


def _etag(value: str) -> str:
    return value.strip().strip('"').lower()


def is_missing_object(exc: ClientError) -> bool:
    """Whether S3 answered that the object is not there (HEAD says 404, GET NoSuchKey)."""
    return _code(exc) in {"404", "NoSuchKey", "NotFound"}


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


class S3Storage:
    def __init__(self, bucket: str, s3: Any = None) -> None:
        self.bucket = bucket
        self._s3 = s3 or aws.client("s3")

    def start_upload(self, key: str) -> str:
        return self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[PartTag], parts_number: int) -> int:
        """Complete the upload with the client's parts and verify the object; its size."""
        uploaded = self._uploaded_parts(key, upload_id)
        if uploaded is None:
            return self._already_completed_size(key)
        expected_size = _check_parts(key, parts, parts_number, uploaded)
        try:
            self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"ETag": p.ETag, "PartNumber": p.PartNumber} for p in sorted(parts, key=_number)]
                },
            )
        except ClientError as exc:
            if _code(exc) in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}:
                raise UploadRefused(f"{key}: {exc.response['Error'].get('Message', _code(exc))}") from exc
            raise
        size = self.object_size(key)
        if size != expected_size:
            raise UploadRefused(f"{key}: stored object has {size} bytes, the parts add up to {expected_size}")
        return size

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise

    def object_size(self, key: str) -> int | None:
        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if is_missing_object(exc):
                return None
            raise

    def objects_under(self, prefix: str) -> dict[str, int]:
        """Key -> size of every object under ``prefix``."""
        found: dict[str, int] = {}
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = int(item["Size"])
        return found

    def _uploaded_parts(self, key: str, upload_id: str) -> dict[int, tuple[str, int]] | None:
        """Part number -> (ETag, size) of what the client uploaded; None if the upload is closed."""
        found: dict[int, tuple[str, int]] = {}
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
        try:
            while True:
                page = self._s3.list_parts(**kwargs)
                for part in page.get("Parts", []):
                    found[int(part["PartNumber"])] = (_etag(part["ETag"]), int(part["Size"]))
                if not page.get("IsTruncated"):
                    return found
                kwargs["PartNumberMarker"] = page["NextPartNumberMarker"]
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                return None
            raise

    def _already_completed_size(self, key: str) -> int:
        size = self.object_size(key)
        if size is None:
            raise UploadRefused(f"{key}: the upload was aborted or expired; create the checkpoint again")
        return size


def _number(part: PartTag) -> int:
    return part.PartNumber


def _check_parts(key: str, parts: Sequence[PartTag], parts_number: int, uploaded: dict[int, tuple[str, int]]) -> int:
    """Refuse parts that do not match what was uploaded; the size they add up to."""
    numbers = sorted(p.PartNumber for p in parts)
    if numbers != list(range(1, parts_number + 1)):
        raise UploadRefused(f"{key}: expected ETags for parts 1..{parts_number}, got parts {numbers}")
    size = 0
    for part in parts:
        if part.PartNumber not in uploaded:
            raise UploadRefused(f"{key}: part {part.PartNumber} was not uploaded")
        etag, part_size = uploaded[part.PartNumber]
        if _etag(part.ETag) != etag:
            raise UploadRefused(f"{key}: ETag of part {part.PartNumber} does not match the uploaded part")
        size += part_size
    return size
