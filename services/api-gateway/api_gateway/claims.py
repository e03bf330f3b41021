"""Claim check: a request body too large for an event goes to S3, and the event carries its URI.

EventBridge takes at most 256 KB per event; img2img images and ControlNet
inputs easily exceed that.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

#: Bodies above this travel through S3; the rest of the event needs room too.
INLINE_LIMIT_BYTES = 128 * 1024


class ClaimCheck:
    def __init__(self, bucket: str, s3: Any, inline_limit_bytes: int = INLINE_LIMIT_BYTES) -> None:
        self._bucket = bucket
        self._s3 = s3
        self._limit = inline_limit_bytes

    def hand_over(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The event fields carrying ``payload``: inline, or as an S3 URI."""
        body = json.dumps(payload).encode()
        if len(body) <= self._limit:
            return {"payload": payload}
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
        return {"payload_s3_uri": f"s3://{self._bucket}/{key}"}

    def put_json(self, key: str, data: dict[str, Any]) -> str:
        """Park ``data`` in the bucket (e.g. a request whose parameters come later); its URI."""
        self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=json.dumps(data).encode(), ContentType="application/json"
        )
        return f"s3://{self._bucket}/{key}"

    def get_json(self, key: str) -> Any:
        """What ``key`` holds, parsed; None when there is no such object. ValueError when it is not JSON.

        "No such object" is any 404: S3 (and its emulators) answer a GET whose key it cannot hold (a
        control character from a client-chosen id) with a bare 404, not ``NoSuchKey``.
        """
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        return json.loads(body)


def _not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("NoSuchKey", "NotFound", "404") or status == 404
