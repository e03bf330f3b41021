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
