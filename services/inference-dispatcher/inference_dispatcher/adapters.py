"""AWS as the dispatcher uses it: the project bucket and SageMaker's async runtime."""

from __future__ import annotations

import json
from typing import Any, Protocol

from botocore.exceptions import ClientError

from service_kit import aws


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


class Storage(Protocol):
    bucket: str

    def put_bytes(self, key: str, body: bytes, content_type: str) -> str: ...
    def put_json(self, key: str, data: Any) -> str: ...
    def get_bytes(self, uri: str) -> bytes: ...


class S3Storage:
    def __init__(self, bucket: str, s3: Any = None) -> None:
        self.bucket = bucket
        self._s3 = s3 or aws.client("s3")

    def put_bytes(self, key: str, body: bytes, content_type: str) -> str:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"

    def put_json(self, key: str, data: Any) -> str:
        return self.put_bytes(key, json.dumps(data).encode(), "application/json")

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()


class Endpoints(Protocol):
    queue_ttl_s: int
    invocation_timeout_s: int

    def status(self, endpoint_name: str) -> str | None: ...
    def invoke_async(self, endpoint_name: str, input_uri: str, inference_id: str) -> str: ...


class SageMakerAsync:
    """DescribeEndpoint (the truth about readiness) and InvokeEndpointAsync."""

    def __init__(self, queue_ttl_s: int, invocation_timeout_s: int, sagemaker: Any = None, runtime: Any = None):
        self.queue_ttl_s = queue_ttl_s
        self.invocation_timeout_s = invocation_timeout_s
        self._sagemaker = sagemaker or aws.client("sagemaker")
        self._runtime = runtime or aws.client("sagemaker-runtime")

    def status(self, endpoint_name: str) -> str | None:
        try:
            return self._sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointStatus"]
        except ClientError as exc:
            if "Could not find" in exc.response.get("Error", {}).get("Message", ""):
                return None
            raise

    def invoke_async(self, endpoint_name: str, input_uri: str, inference_id: str) -> str:
        response = self._runtime.invoke_endpoint_async(
            EndpointName=endpoint_name,
            InputLocation=input_uri,
            InferenceId=inference_id,
            ContentType="application/json",
            Accept="application/json",
            RequestTTLSeconds=self.queue_ttl_s,
            InvocationTimeoutSeconds=self.invocation_timeout_s,
        )
        return response["OutputLocation"]
