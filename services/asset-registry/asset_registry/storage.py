"""The project bucket as asset-registry uses it beyond uploads: ranged reads, parts it writes itself, deletes."""

from __future__ import annotations

from service_kit.storage import S3Storage

#: S3's DeleteObjects takes at most this many keys a request.
DELETE_BATCH = 1000


class AssetStorage(S3Storage):
    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes of the object from ``start`` (one ranged GET)."""
        if length <= 0:
            return b""
        answer = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
        return answer["Body"].read()

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        """Store one part of an upload this service opened; its ETag."""
        answer = self._s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        return answer["ETag"]

    def complete_parts(self, key: str, upload_id: str, etags: list[str]) -> None:
        """Join parts 1..n (``etags`` in order) of an upload this service wrote itself."""
        parts = [{"ETag": etag, "PartNumber": number} for number, etag in enumerate(etags, start=1)]
        self._s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )

    def delete_under(self, prefix: str) -> None:
        """Delete every object under ``prefix`` and abort the uploads open there."""
        self.abort_uploads_under(prefix)
        self.delete_keys(list(self.objects_under(prefix)))

    def delete_keys(self, keys: list[str]) -> None:
        """Delete these objects (a key with no object is no error)."""
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
            answer = self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise RuntimeError(f"S3 kept {len(answer['Errors'])} of the objects it was asked to delete: {first}")

    def abort_uploads_under(self, prefix: str) -> None:
        for page in self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                self.abort_upload(upload["Key"], upload["UploadId"])
