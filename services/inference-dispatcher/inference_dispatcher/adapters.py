"""AWS as the dispatcher uses it: the project bucket and SageMaker's async runtime."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from sdmw_contracts.s3 import split_s3_uri
from service_kit import aws
from service_kit.sagemaker import describe_error, is_not_found


class InvocationRefused(RuntimeError):
    """SageMaker would not take the job; the message is the reason a user reads."""


class Storage(Protocol):
    bucket: str

    def put_json(self, key: str, body: str) -> str: ...
    def exists(self, key: str) -> bool: ...
    def get_bytes(self, uri: str) -> bytes: ...
    def delete(self, uri: str) -> None: ...
    def delete_prefix(self, prefix: str, keep: frozenset[str] = frozenset()) -> int: ...


class S3Storage:
    def __init__(self, bucket: str, s3: Any = None) -> None:
        self.bucket = bucket
        self._s3 = s3 or aws.client("s3")

    def put_json(self, key: str, body: str) -> str:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode(), ContentType="application/json")
        return f"s3://{self.bucket}/{key}"

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def delete(self, uri: str) -> None:
        """Remove one object; one that is not there is not an error (S3's own DeleteObject)."""
        bucket, key = split_s3_uri(uri)
        self._s3.delete_object(Bucket=bucket, Key=key)

    def delete_prefix(self, prefix: str, keep: frozenset[str] = frozenset()) -> int:
        """Remove every object of the project bucket under ``prefix`` but the keys in ``keep``; how many."""
        removed = 0
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [item["Key"] for item in page.get("Contents", []) if item["Key"] not in keep]
            if keys:  # a page holds at most 1,000 keys, as many as one DeleteObjects takes
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys]})
                removed += len(keys)
        return removed


class Endpoints(Protocol):
    queue_ttl_s: int
    invocation_timeout_s: int

    def invoke_async(self, endpoint_name: str, input_uri: str, inference_id: str) -> None: ...


class SageMakerAsync:
    """InvokeEndpointAsync. Its own answer says whether the endpoint exists and is in service, so the
    dispatcher asks nothing before it (the edge checked both from its read model)."""

    def __init__(self, queue_ttl_s: int, invocation_timeout_s: int, runtime: Any = None):
        self.queue_ttl_s = queue_ttl_s
        self.invocation_timeout_s = invocation_timeout_s
        self._runtime = runtime or aws.client("sagemaker-runtime")

    def invoke_async(self, endpoint_name: str, input_uri: str, inference_id: str) -> None:
        """Hand the job to the endpoint's queue; InvocationRefused when SageMaker will not take it."""
        try:
            self._runtime.invoke_endpoint_async(
                EndpointName=endpoint_name,
                InputLocation=input_uri,
                InferenceId=inference_id,
                ContentType="application/json",
                Accept="application/json",
                RequestTTLSeconds=self.queue_ttl_s,
                InvocationTimeoutSeconds=self.invocation_timeout_s,
            )
        except ClientError as exc:
            if is_not_found(exc):
                raise InvocationRefused(f"endpoint {endpoint_name} does not exist") from exc
            if _is_refusal(exc):
                raise InvocationRefused(f"SageMaker refused the request: {describe_error(exc)}") from exc
            raise  # throttling, a 5xx: the message is retried


def _is_refusal(exc: ClientError) -> bool:
    """A 4xx other than throttling: sending the same job again would be refused again."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code = exc.response.get("Error", {}).get("Code", "")
    return 400 <= status < 500 and "Throttl" not in code
