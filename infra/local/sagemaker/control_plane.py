"""The SageMaker control-plane operations: request bodies in, response bodies out.

Member names and shapes follow botocore's service model for ``sagemaker``
(AWS JSON 1.1; timestamps are epoch seconds). Each operation is a function of
(LocalSageMaker, request body) in ``OPERATIONS``; the server maps
``X-Amz-Target: SageMaker.<Operation>`` onto it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from infra.local.sagemaker.state import ApiError, Endpoint, LocalSageMaker, validation_error

Body = dict[str, Any]

# The name patterns from the service model.
NAME_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
MODEL_NAME_PATTERN = r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?"
DEFAULT_MAX_RESULTS = 10  # SageMaker's default page size for List* calls

_TIME_FILTERS = (
    ("CreationTimeBefore", "CreationTime", operator.lt),
    ("CreationTimeAfter", "CreationTime", operator.gt),
    ("LastModifiedTimeBefore", "LastModifiedTime", operator.lt),
    ("LastModifiedTimeAfter", "LastModifiedTime", operator.gt),
)


# Request validation, worded as SageMaker words it


def _member_path(member: str) -> str:
    return member[0].lower() + member[1:]


def _required(body: Body, member: str) -> Any:
    value = body.get(member)
    if value is None:
        raise validation_error(
            f"1 validation error detected: Value null at '{_member_path(member)}' failed to satisfy constraint: "
            "Member must not be null"
        )
    return value


def _name(body: Body, member: str, pattern: str = NAME_PATTERN) -> str:
    value = _required(body, member)
    if not isinstance(value, str) or len(value) > 63 or not re.fullmatch(pattern, value):
        raise validation_error(
            f"1 validation error detected: Value '{value}' at '{_member_path(member)}' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {pattern}"
        )
    return value


def _tags(body: Body) -> dict[str, str]:
    return {tag["Key"]: tag.get("Value", "") for tag in body.get("Tags") or []}


def _spec(body: Body, *leave_out: str) -> Body:
    """What a Create* request asked for, kept to describe it later."""
    return {key: value for key, value in body.items() if key not in {*leave_out, "Tags"}}


def _page(summaries: list[Body], body: Body, sort_fields: dict[str, str], list_member: str) -> Body:
    """Filter, sort and page a List* answer as SageMaker does (CreationTime, newest first, by default)."""
    if contains := body.get("NameContains"):
        summaries = [s for s in summaries if contains.lower() in s[sort_fields["Name"]].lower()]
    for member, field, keep in _TIME_FILTERS:
        if member in body:
            summaries = [s for s in summaries if field in s and keep(s[field], float(body[member]))]
    sort_by = body.get("SortBy", "CreationTime")
    if sort_by not in sort_fields:
        raise validation_error(f"Value '{sort_by}' at 'sortBy' must be one of {sorted(sort_fields)}.")
    descending = body.get("SortOrder", "Descending") == "Descending"
    summaries = sorted(summaries, key=lambda s: s[sort_fields[sort_by]], reverse=descending)
    try:
        start = int(body.get("NextToken") or 0)
    except ValueError:
        raise validation_error("Invalid pagination token.") from None
    end = start + int(body.get("MaxResults") or DEFAULT_MAX_RESULTS)
    page: Body = {list_member: summaries[start:end]}
    if end < len(summaries):
        page["NextToken"] = str(end)
    return page


# Models


def create_model(sm: LocalSageMaker, body: Body) -> Body:
    name = _name(body, "ModelName", MODEL_NAME_PATTERN)
    if not body.get("PrimaryContainer") and not body.get("Containers"):
        raise validation_error("Either PrimaryContainer or Containers must be specified.")
    return {"ModelArn": sm.create_model(name, _spec(body, "ModelName")).arn}


def describe_model(sm: LocalSageMaker, body: Body) -> Body:
    model = sm.model(_required(body, "ModelName"))
    return {"ModelName": model.name, "ModelArn": model.arn, "CreationTime": model.creation_time, **model.spec}


def delete_model(sm: LocalSageMaker, body: Body) -> Body:
    sm.delete_model(_required(body, "ModelName"))
    return {}


def list_models(sm: LocalSageMaker, body: Body) -> Body:
    summaries = [{"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.creation_time} for m in sm.models()]
    return _page(summaries, body, {"Name": "ModelName", "CreationTime": "CreationTime"}, "Models")


# Endpoint configs


def create_endpoint_config(sm: LocalSageMaker, body: Body) -> Body:
    name = _name(body, "EndpointConfigName")
    variants = _required(body, "ProductionVariants")
    if not isinstance(variants, list) or not variants:
        raise validation_error("ProductionVariants must name at least one production variant.")
    for variant in variants:
        _name(variant, "VariantName")
        _required(variant, "ModelName")
    if len({variant["VariantName"] for variant in variants}) != len(variants):
        raise validation_error("The VariantName of each production variant must be unique.")
    if "AsyncInferenceConfig" in body:
        _required(body["AsyncInferenceConfig"], "OutputConfig")
    return {"EndpointConfigArn": sm.create_endpoint_config(name, _spec(body, "EndpointConfigName")).arn}


def describe_endpoint_config(sm: LocalSageMaker, body: Body) -> Body:
    config = sm.endpoint_config(_required(body, "EndpointConfigName"))
    return {
        "EndpointConfigName": config.name,
        "EndpointConfigArn": config.arn,
        "CreationTime": config.creation_time,
        **config.spec,
    }


def delete_endpoint_config(sm: LocalSageMaker, body: Body) -> Body:
    sm.delete_endpoint_config(_required(body, "EndpointConfigName"))
    return {}


def list_endpoint_configs(sm: LocalSageMaker, body: Body) -> Body:
    summaries = [
        {"EndpointConfigName": c.name, "EndpointConfigArn": c.arn, "CreationTime": c.creation_time}
        for c in sm.endpoint_configs()
    ]
    return _page(summaries, body, {"Name": "EndpointConfigName", "CreationTime": "CreationTime"}, "EndpointConfigs")


# Endpoints


def create_endpoint(sm: LocalSageMaker, body: Body) -> Body:
    name = _name(body, "EndpointName")
    config_name = _required(body, "EndpointConfigName")
    return {"EndpointArn": sm.create_endpoint(name, config_name, _tags(body)).arn}


def describe_endpoint(sm: LocalSageMaker, body: Body) -> Body:
    endpoint = sm.endpoint(_required(body, "EndpointName"))
    with sm.lock:
        answer = {
            "EndpointName": endpoint.name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": endpoint.config_name,
            "ProductionVariants": _variant_summaries(endpoint),
            "EndpointStatus": endpoint.status,
            "CreationTime": endpoint.creation_time,
            "LastModifiedTime": endpoint.last_modified_time,
        }
        if endpoint.failure_reason:
            answer["FailureReason"] = endpoint.failure_reason
        if endpoint.async_inference_config:
            answer["AsyncInferenceConfig"] = endpoint.async_inference_config
        return answer


def _variant_summaries(endpoint: Endpoint) -> list[Body]:
    in_service = endpoint.status == "InService"
    summaries = []
    for variant in endpoint.variants:
        running = [
            i for i in endpoint.instances if i.variant_name == variant.name and i.healthy and i.exit_code() is None
        ]
        summary: Body = {
            "VariantName": variant.name,
            "CurrentWeight": variant.weight if in_service else 0.0,
            "DesiredWeight": variant.weight,
            "CurrentInstanceCount": len(running),
            "DesiredInstanceCount": variant.instance_count,
        }
        if variant.image:
            summary["DeployedImages"] = [{"SpecifiedImage": variant.image, "ResolvedImage": variant.image}]
        summaries.append(summary)
    return summaries


def delete_endpoint(sm: LocalSageMaker, body: Body) -> Body:
    sm.delete_endpoint(_required(body, "EndpointName"))
    return {}


def list_endpoints(sm: LocalSageMaker, body: Body) -> Body:
    with sm.lock:
        summaries = [
            {
                "EndpointName": e.name,
                "EndpointArn": e.arn,
                "CreationTime": e.creation_time,
                "LastModifiedTime": e.last_modified_time,
                "EndpointStatus": e.status,
            }
            for e in sm.endpoints()
        ]
    if status := body.get("StatusEquals"):
        summaries = [s for s in summaries if s["EndpointStatus"] == status]
    sort_fields = {"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"}
    return _page(summaries, body, sort_fields, "Endpoints")


OPERATIONS: dict[str, Callable[[LocalSageMaker, Body], Body]] = {
    "CreateModel": create_model,
    "DescribeModel": describe_model,
    "DeleteModel": delete_model,
    "ListModels": list_models,
    "CreateEndpointConfig": create_endpoint_config,
    "DescribeEndpointConfig": describe_endpoint_config,
    "DeleteEndpointConfig": delete_endpoint_config,
    "ListEndpointConfigs": list_endpoint_configs,
    "CreateEndpoint": create_endpoint,
    "DescribeEndpoint": describe_endpoint,
    "DeleteEndpoint": delete_endpoint,
    "ListEndpoints": list_endpoints,
}


def dispatch(sm: LocalSageMaker, operation: str, body: Body) -> Body:
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise ApiError("UnknownOperationException", f"The local SageMaker does not implement {operation}.")
    return handler(sm, body)
