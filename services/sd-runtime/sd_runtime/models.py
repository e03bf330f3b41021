"""Models from S3 into a local cache directory.

A ``ModelRef.s3_uri`` ending in ``/`` is a folder (a diffusers model): every
object under the prefix is fetched, keeping the relative paths. Anything else
is one file. Files already in the cache are reused while their ETag and size
still match the object in S3, so a model is downloaded once per instance
unless it changes.

A file that is a tar archive by its content (``sd_runtime.archives.is_tar``:
the WebUI's AWS extension uploads every model as a tar named like the model,
``x.safetensors`` holding ``models/Lora/x.safetensors``) is unpacked safely
once, next to where it was downloaded, in a folder named after the object's
ETag and size (``<file>.unpacked/<version>/``), and the archive is deleted;
``fetch`` then answers the model file inside (``sd_runtime.archives.model_file_in``),
and the next ``fetch`` of the same object version answers it without
downloading anything. A changed object is downloaded and unpacked again, and
the older unpacked versions are removed.

The S3 client comes from boto3's standard configuration, so
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) points it at a local
emulator and nothing here knows which one it talks to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from sd_runtime.archives import ArchiveError, is_tar, model_file_in, safe_extract
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
        """The local path of ``uri``: a file, or a folder for a prefix. ``what`` names it in errors.

        A file that is a tar archive (by its content, whatever its name) is unpacked and the model file it
        holds is answered instead (see the module's docstring).
        """
        bucket, key = _bucket_and_key(uri)
        client = self.client_factory()
        if is_folder_uri(uri):
            return self._fetch_folder(client, bucket, key, uri, what)
        local = self._local_path(bucket, key)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            raise self._not_found(error, uri, what) from None
        etag, size = head["ETag"], head["ContentLength"]
        unpacked = _unpacked_model(local, etag, size)
        if unpacked is not None:
            return unpacked
        self._download(client, bucket, key, local, etag, size)
        if is_tar(local):
            return _unpack_model(local, etag, size, f"{what} {uri}")
        shutil.rmtree(_unpacked_root(local), ignore_errors=True)  # the object was an archive before
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


def _unpacked_root(local: Path) -> Path:
    return local.with_name(local.name + ".unpacked")


def _version(etag: str, size: int) -> str:
    return hashlib.sha256(f"{etag}|{size}".encode()).hexdigest()[:16]


def _unpacked_model(local: Path, etag: str, size: int) -> Path | None:
    """The model file unpacked earlier from this version (ETag and size) of the archive at ``local``, if any."""
    root = _unpacked_root(local)
    version = _version(etag, size)
    record = _read_json(root / f"{version}.json")
    if not isinstance(record, dict) or record.get("etag") != etag or record.get("size") != size:
        return None
    model = root / version / str(record.get("model", ""))
    folder = (root / version).resolve()
    if not model.resolve().is_relative_to(folder) or not model.is_file():
        return None
    return model


def _unpack_model(local: Path, etag: str, size: int, described: str) -> Path:
    """Unpack the archive downloaded to ``local`` beside it, and answer the model file it holds.

    The archive is unpacked into a scratch folder renamed into place when the
    model file is found, then a record naming it is written (so a half-done
    unpack is never used); older versions and the archive itself are removed.
    An archive without a usable model is kept (it is not fetched again) and
    its ``ArchiveError`` says what it holds.
    """
    root = _unpacked_root(local)
    root.mkdir(parents=True, exist_ok=True)
    version = _version(etag, size)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".unpacking-"))
    try:
        try:
            safe_extract(local, scratch, outside_links="refuse")
        except ArchiveError as error:
            raise ArchiveError(f"{described}: {error.message}") from None
        model = model_file_in(scratch, local.name, described)
        relative = model.relative_to(scratch).as_posix()
        target = root / version
        shutil.rmtree(target, ignore_errors=True)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (root / f"{version}.json").write_text(json.dumps({"etag": etag, "size": size, "model": relative}))
    for other in root.iterdir():
        if other.name in (version, f"{version}.json"):
            continue
        if other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
        else:
            other.unlink(missing_ok=True)
    local.unlink(missing_ok=True)
    local.with_name(local.name + ".s3meta").unlink(missing_ok=True)
    return target / relative


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
