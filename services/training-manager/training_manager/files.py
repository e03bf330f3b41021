"""Removing a deleted job's files from the project bucket."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from service_kit import aws

#: DeleteObjects takes at most this many keys a call.
_DELETE_BATCH = 1000


class JobFiles(Protocol):
    def delete_under(self, prefix: str, keep: Collection[str] = ()) -> int:
        """Delete every object under ``prefix`` but ``keep``, and abort uploads left open there; how many."""
        ...


class S3JobFiles:
    def __init__(self, bucket: str, s3: Any = None) -> None:
        self.bucket = bucket
        self._s3 = s3 or aws.client("s3")

    def delete_under(self, prefix: str, keep: Collection[str] = ()) -> int:
        # An empty prefix would be the whole bucket: never what a job's deletion means.
        if not prefix.strip("/"):
            raise ValueError("refusing to delete the whole bucket (empty prefix)")
        doomed = [key for key in self._keys_under(prefix) if key not in keep]
        for start in range(0, len(doomed), _DELETE_BATCH):
            batch = [{"Key": key} for key in doomed[start : start + _DELETE_BATCH]]
            answer = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise RuntimeError(f"could not delete s3://{self.bucket}/{first['Key']}: {first.get('Message')}")
        self._abort_uploads_under(prefix)
        return len(doomed)

    def _keys_under(self, prefix: str) -> list[str]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def _abort_uploads_under(self, prefix: str) -> None:
        pages = self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for upload in page.get("Uploads", []):
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
