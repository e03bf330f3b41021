"""JSON documents the WebUI extension's two-step flows park in the bucket: a request whose parameters
arrive later (``inference/v2``), and the parameters it uploads itself (``config/aigc.json``).

(An event too large for EventBridge is a different matter: ``service_kit.claims`` handles that for
every event.)
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


class ClaimCheck:
    def __init__(self, bucket: str, s3: Any) -> None:
        self._bucket = bucket
        self._s3 = s3

    def put_json(self, key: str, data: dict[str, Any]) -> str:
        """Park ``data`` in the bucket (e.g. a request whose parameters come later); its URI."""
        self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=json.dumps(data).encode(), ContentType="application/json"
        )
        return f"s3://{self._bucket}/{key}"

    def get_json(self, key: str, max_bytes: int | None = None) -> Any:
        """What ``key`` holds, parsed; None when there is no such object. ValueError when it is not JSON;
        :class:`TooLarge` when it is over ``max_bytes``, read no further than that.

        "No such object" is any 404: S3 (and its emulators) answer a GET whose key it cannot hold (a
        control character from a client-chosen id) with a bare 404, not ``NoSuchKey``. One GET: its
        ``Content-Length`` is known before the body is read, so a large object is refused unread (a HEAD
        first would leave a window for the object to be replaced), and no more than one byte past
        ``max_bytes`` is ever read.
        """
        try:
            answer = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        stream = answer["Body"]
        try:
            if max_bytes is None:
                return json.loads(stream.read())
            declared = int(answer.get("ContentLength") or 0)
            if declared > max_bytes:
                raise TooLarge(declared)
            body = stream.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise TooLarge(max(declared, len(body)))
        finally:
            stream.close()
        return json.loads(body)


class TooLarge(ValueError):
    """A parked document over the size its reader takes."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


def _not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("NoSuchKey", "NotFound", "404") or status == 404
