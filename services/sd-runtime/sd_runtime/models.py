"""Models from S3 into a local cache directory.

A ``ModelRef.s3_uri`` ending in ``/`` is a folder (a diffusers model): every
object under the prefix is fetched, keeping the relative paths. Anything else
is one file. Files already in the cache are reused while their ETag and size
still match the object in S3, so a model is downloaded once per instance
unless it changes.

The S3 client comes from boto3's standard configuration, so
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) points it at a local
emulator and nothing here knows which one it talks to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from sd_runtime.errors import ModelNotFound, RequestError
from sdmw_contracts.s3 import split_s3_uri

_MISSING_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def _bucket_and_key(uri: str) -> tuple[str, str]:
    """A URI the request named: anything but ``s3://bucket/key`` is the client's error (400)."""
    try:
        bucket, key = split_s3_uri(uri)
    except ValueError as error:
        raise RequestError(str(error)) from None
    if not key:
        raise RequestError(f"{uri!r} must name a bucket and a key: s3://bucket/key")
    return bucket, key


def is_folder_uri(uri: str) -> bool:
    return uri.endswith("/")


@dataclass
class ModelStore:
    cache_dir: Path
    #: Makes the S3 client; one per operation, so each sees the environment as it is now.
    client_factory: Callable[[], Any] = lambda: boto3.client("s3")

    def fetch(self, uri: str, what: str = "model") -> Path:
        """The local path of ``uri``: a file, or a folder for a prefix. ``what`` names it in errors."""
        bucket, key = _bucket_and_key(uri)
        client = self.client_factory()
        if is_folder_uri(uri):
            return self._fetch_folder(client, bucket, key, uri, what)
        local = self._local_path(bucket, key)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            raise self._not_found(error, uri, what) from None
        self._download(client, bucket, key, local, head["ETag"], head["ContentLength"])
        return local

    def upload(self, path: Path, uri: str) -> None:
        bucket, key = _bucket_and_key(uri)
        self.client_factory().upload_file(str(path), bucket, key)

    def put_bytes(self, uri: str, body: bytes, content_type: str) -> None:
        bucket, key = _bucket_and_key(uri)
        self.client_factory().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def _fetch_folder(self, client: Any, bucket: str, prefix: str, uri: str, what: str) -> Path:
        local_root = self._local_path(bucket, prefix)
        found = 0
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(prefix) :]
                    if not relative or relative.endswith("/"):
                        continue  # folder marker objects carry no data
                    target = self._inside(local_root, relative)
                    self._download(client, bucket, item["Key"], target, item["ETag"], item["Size"])
                    found += 1
        except ClientError as error:
            raise self._not_found(error, uri, what) from None
        if not found:
            raise ModelNotFound(f"{what} {uri} not found: there are no objects under that prefix")
        return local_root

    def _download(self, client: Any, bucket: str, key: str, local: Path, etag: str, size: int) -> None:
        marker = local.with_name(local.name + ".s3meta")
        wanted = {"etag": etag, "size": size}
        if local.is_file() and marker.is_file() and _read_json(marker) == wanted and local.stat().st_size == size:
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(local.name + ".part")
        client.download_file(bucket, key, str(partial))
        # Rename last, so an interrupted download is never mistaken for a cached file.
        os.replace(partial, local)
        marker.write_text(json.dumps(wanted))

    def _local_path(self, bucket: str, key: str) -> Path:
        return self._inside(self.cache_dir / "s3" / bucket, key)

    @staticmethod
    def _inside(root: Path, relative: str) -> Path:
        path = (root / relative).resolve()
        if not path.is_relative_to(root.resolve()):
            raise RequestError(f"S3 key {relative!r} would leave the model cache")
        return path

    @staticmethod
    def _not_found(error: ClientError, uri: str, what: str) -> RequestError:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _MISSING_CODES:
            return ModelNotFound(f"{what} {uri} not found")
        if code in {"403", "AccessDenied"}:
            return ModelNotFound(f"{what} {uri} cannot be read: access denied")
        return RequestError(f"{what} {uri} could not be fetched: {error}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
