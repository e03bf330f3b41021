"""The SageMaker control-plane operations: request bodies in, response bodies out.

Member names and shapes follow botocore's service model for ``sagemaker``
(AWS JSON 1.1; timestamps are epoch seconds). Each operation is a function of
(LocalSageMaker, request body) in ``OPERATIONS``; the server maps
``X-Amz-Target: SageMaker.<Operation>`` onto it. Models, endpoint configs and
endpoints (Create, Describe, Delete, List) and training jobs (Create,
Describe, Stop, List) are implemented; requests are validated here, worded as
SageMaker words its errors, before the state sees them.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from infra.local.sagemaker.common import ApiError, validation_error
from infra.local.sagemaker.state import Endpoint, LocalSageMaker
from infra.local.sagemaker.training import training_instance_types

Body = dict[str, Any]

# The name patterns from the service model.
NAME_PATTERN = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
MODEL_NAME_PATTERN = r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?"
CHANNEL_NAME_PATTERN = r"[A-Za-z0-9\.\-_]+"
ENVIRONMENT_KEY = r"[a-zA-Z_][a-zA-Z0-9_]*"
S3_URI_PATTERN = r"(https|s3)://([^/]+)/?(.*)"
DEFAULT_MAX_RESULTS = 10  # SageMaker's default page size for List* calls
MAX_HYPERPARAMETER_KEY = 256
MAX_HYPERPARAMETER_VALUE = 2500
MAX_ENVIRONMENT_KEY = 512
MAX_ENVIRONMENT_VALUE = 512
MAX_CHANNELS = 20
S3_DATA_TYPES = ("ManifestFile", "S3Prefix", "AugmentedManifestFile", "Converse")

_TIME_FILTERS = (
    ("CreationTimeBefore", "CreationTime", operator.lt),
    ("CreationTimeAfter", "CreationTime", operator.gt),
    ("LastModifiedTimeBefore", "LastModifiedTime", operator.lt),
    ("LastModifiedTimeAfter", "LastModifiedTime", operator.gt),
)


# Request validation, worded as SageMaker words it


def _member_path(member: str) -> str:
    return member[0].lower() + member[1:]


def _constraint(value: Any, path: str, constraint: str) -> ApiError:
    return validation_error(
        f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: {constraint}"
    )


def _required(body: Body, member: str, within: str = "") -> Any:
    """``body[member]``; ``within`` is where ``body`` sits in the request (``outputDataConfig.``)."""
    value = body.get(member)
    if value is None:
        raise validation_error(
            f"1 validation error detected: Value null at '{within}{_member_path(member)}' failed to satisfy "
            "constraint: Member must not be null"
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


# Training jobs


def create_training_job(sm: LocalSageMaker, body: Body) -> Body:
    name = _name(body, "TrainingJobName")
    _required(body, "RoleArn")
    _check_algorithm(_required(body, "AlgorithmSpecification"))
    _check_output(_required(body, "OutputDataConfig"))
    _check_resources(_required(body, "ResourceConfig"))
    _check_stopping_condition(_required(body, "StoppingCondition"))
    _check_string_map(body.get("HyperParameters"), "hyperParameters", MAX_HYPERPARAMETER_KEY, MAX_HYPERPARAMETER_VALUE)
    _check_string_map(
        body.get("Environment"), "environment", MAX_ENVIRONMENT_KEY, MAX_ENVIRONMENT_VALUE, ENVIRONMENT_KEY
    )
    _check_channels(body.get("InputDataConfig") or [])
    return {"TrainingJobArn": sm.training.create(name, _spec(body, "TrainingJobName"), _tags(body)).arn}


def _enum(value: Any, path: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise _constraint(value, path, f"Member must satisfy enum value set: [{', '.join(allowed)}]")


def _at_least(value: Any, path: str, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _constraint(value, path, f"Member must have value greater than or equal to {minimum}")


def _s3_uri(uri: Any, path: str) -> None:
    if not isinstance(uri, str) or len(uri) > 1024 or not re.fullmatch(S3_URI_PATTERN, uri):
        raise _constraint(uri, path, f"Member must satisfy regular expression pattern: {S3_URI_PATTERN}")
    if not uri.startswith("s3://"):
        raise validation_error(f"The local SageMaker reads and writes s3:// URIs only, not {uri}.")


def _input_mode(mode: Any, path: str) -> None:
    _enum(mode, path, ("Pipe", "File", "FastFile"))
    if mode == "Pipe":
        # The container would read a FIFO that nothing here writes.
        raise validation_error("The local SageMaker supports the File and FastFile input modes only, not Pipe.")


def _check_algorithm(algorithm: Body) -> None:
    if algorithm.get("TrainingImage") is None and algorithm.get("AlgorithmName") is not None:
        raise validation_error("The local SageMaker runs training images only: give TrainingImage, not AlgorithmName.")
    _required(algorithm, "TrainingImage", "algorithmSpecification.")
    mode = _required(algorithm, "TrainingInputMode", "algorithmSpecification.")
    _input_mode(mode, "algorithmSpecification.trainingInputMode")


def _check_output(output: Body) -> None:
    _s3_uri(_required(output, "S3OutputPath", "outputDataConfig."), "outputDataConfig.s3OutputPath")
    _enum(output.get("CompressionType", "GZIP"), "outputDataConfig.compressionType", ("GZIP", "NONE"))


def _check_resources(resources: Body) -> None:
    instance_type = _required(resources, "InstanceType", "resourceConfig.")
    if instance_type not in training_instance_types():
        raise _constraint(
            instance_type,
            "resourceConfig.instanceType",
            "Member must satisfy enum value set of SageMaker training instance types",
        )
    count = _required(resources, "InstanceCount", "resourceConfig.")
    _at_least(count, "resourceConfig.instanceCount", 1)
    if count > 1:
        # One process stands for one instance; a job of several would wait for hosts that never come.
        raise ApiError(
            "ResourceLimitExceeded",
            f"The account-level service limit '{instance_type} for training job usage' is 1 Instances, with "
            f"current utilization of 0 Instances and a request delta of {count} Instances. The local SageMaker "
            "runs a training job on one instance.",
        )


def _check_stopping_condition(stopping: Body) -> None:
    seconds = _required(stopping, "MaxRuntimeInSeconds", "stoppingCondition.")
    _at_least(seconds, "stoppingCondition.maxRuntimeInSeconds", 1)


def _check_string_map(
    mapping: Any, path: str, max_key: int, max_value: int, key_pattern: str = ".*", max_entries: int = 100
) -> None:
    """HyperParameters and Environment: at most ``max_entries`` string keys and values within SageMaker's lengths."""
    if mapping is None:
        return
    if not isinstance(mapping, dict) or len(mapping) > max_entries:
        raise _constraint(mapping, path, f"Member must have length less than or equal to {max_entries}")
    for key, value in mapping.items():
        if len(key) > max_key or not re.fullmatch(key_pattern, key):
            raise _constraint(
                key,
                path,
                f"Map keys must satisfy constraint: [Member must have length less than or equal to {max_key}, "
                f"Member must satisfy regular expression pattern: {key_pattern}]",
            )
        if not isinstance(value, str) or len(value) > max_value:
            shown = f"{value[:40]}..." if isinstance(value, str) else value
            raise _constraint(
                shown,
                f"{path}.{key}",
                "Map value must satisfy constraint: [Member must be a string, Member must have length less than "
                f"or equal to {max_value}]",
            )


def _check_channels(channels: Any) -> None:
    if not isinstance(channels, list) or len(channels) > MAX_CHANNELS:
        raise _constraint(channels, "inputDataConfig", f"Member must have length less than or equal to {MAX_CHANNELS}")
    names = [_check_channel(channel, f"inputDataConfig.{index}.member.") for index, channel in enumerate(channels, 1)]
    if len(set(names)) != len(names):
        raise validation_error("Channel names must be unique within InputDataConfig.")


def _check_channel(channel: Body, within: str) -> str:
    name = _required(channel, "ChannelName", within)
    if not isinstance(name, str) or len(name) > 64 or not re.fullmatch(CHANNEL_NAME_PATTERN, name):
        raise _constraint(
            name, within + "channelName", f"Member must satisfy regular expression pattern: {CHANNEL_NAME_PATTERN}"
        )
    source = _required(channel, "DataSource", within).get("S3DataSource")
    if source is None:
        raise validation_error(f"Channel {name}: the local SageMaker reads channels from S3 only (S3DataSource).")
    within += "dataSource.s3DataSource."
    data_type = _required(source, "S3DataType", within)
    _enum(data_type, within + "s3DataType", S3_DATA_TYPES)
    if data_type != "S3Prefix":
        raise validation_error(
            f"Channel {name}: the local SageMaker supports S3DataType S3Prefix only, not {data_type}."
        )
    _s3_uri(_required(source, "S3Uri", within), within + "s3Uri")
    if "InputMode" in channel:
        _input_mode(channel["InputMode"], within.removesuffix("dataSource.s3DataSource.") + "inputMode")
    return name


def describe_training_job(sm: LocalSageMaker, body: Body) -> Body:
    return sm.training.describe(_required(body, "TrainingJobName"))


def stop_training_job(sm: LocalSageMaker, body: Body) -> Body:
    sm.training.stop(_required(body, "TrainingJobName"))
    return {}


def list_training_jobs(sm: LocalSageMaker, body: Body) -> Body:
    summaries = sm.training.summaries()
    if status := body.get("StatusEquals"):
        summaries = [s for s in summaries if s["TrainingJobStatus"] == status]
    if body.get("WarmPoolStatusEquals") or body.get("TrainingPlanArnEquals"):
        summaries = []  # local jobs keep no warm pool and run on no training plan
    sort_fields = {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"}
    return _page(summaries, body, sort_fields, "TrainingJobSummaries")


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
    "CreateTrainingJob": create_training_job,
    "DescribeTrainingJob": describe_training_job,
    "StopTrainingJob": stop_training_job,
    "ListTrainingJobs": list_training_jobs,
}


def dispatch(sm: LocalSageMaker, operation: str, body: Body) -> Body:
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise ApiError("UnknownOperationException", f"The local SageMaker does not implement {operation}.")
    return handler(sm, body)
