"""The CDK app's templates: what each stack deploys, checked against the declarations it is rendered from.

One synth of the whole app per session (``full_synth`` in conftest.py); a
few checks synthesize a variant (one service alone, a pinned runtime image, a
probe that nag must refuse). The static check at the end compares the
declared ``Grant``s with the boto3 calls each service's code makes.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from api_gateway.app import served_routes
from infra.aws.package import LOCAL_ONLY, SHARED_PACKAGES, service_package
from infra.catalog import SERVICES
from infra.core import CORE
from sdmw_contracts.api.routes import DATASET_DATA_ALIAS, SEED_ROUTES
from service_kit.resources import (
    ANY_RESOURCE,
    BUCKET,
    BUCKET_OBJECTS,
    SAGEMAKER_ROLE,
    Grant,
    ServiceResources,
)
from tests.unit.infra.conftest import PREFIX, Synth, of_type, ref_id, render, stack_name, synth

REPO = Path(__file__).resolve().parents[3]
SERVICE_NAMES = [resources.service for resources in SERVICES]
BY_NAME = {resources.service: resources for resources in SERVICES}

PARTITION, REGION, ACCOUNT = "${AWS::Partition}", "${AWS::Region}", "${AWS::AccountId}"
BUCKET_ARN = f"arn:{PARTITION}:s3:::{PREFIX}-{CORE.bucket}-{ACCOUNT}-{REGION}"
BUS_ARN = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{PREFIX}-{CORE.bus}"
ALARM_TOPIC_ARN = f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{PREFIX}-{CORE.alarm_topic}"


def service_template(full_synth: Synth, service: str) -> dict[str, Any]:
    return full_synth.templates[stack_name(service)]


def find_all(node: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a JSON document."""
    found = []
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key:
                found.append(value)
            found.extend(find_all(value, key))
    elif isinstance(node, list):
        for item in node:
            found.extend(find_all(item, key))
    return found


# 1. The whole app synthesizes, and cdk-nag found nothing unacknowledged


def test_whole_app_synthesizes_with_no_nag_violation(full_synth: Synth):
    assert set(full_synth.templates) == {stack_name("core"), *(stack_name(s) for s in SERVICE_NAMES)}
    report_file = full_synth.outdir / "validation-report.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        violations = [
            (
                plugin.get("pluginName"),
                violation["ruleName"],
                [c["constructPath"] for c in violation["violatingConstructs"]],
            )
            for plugin in report.get("pluginReports", [])
            for violation in plugin.get("violations", [])
        ]
        assert violations == []
        assert all(plugin.get("conclusion") != "failure" for plugin in report.get("pluginReports", []))


def test_nag_runs_on_every_synth_and_refuses_an_unacknowledged_finding(tmp_path: Path):
    """Without this, a synth that passes could mean nag never ran: a bare queue (no DLQ, no TLS) must fail it."""
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs

    def bare_queue(app: cdk.App) -> None:
        sqs.Queue(cdk.Stack(app, "sdmw-nag-probe"), "Bare")

    with pytest.raises(Exception, match="ValidationFailed"):
        synth(tmp_path, context={"only": "asset-registry"}, extra=bare_queue)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules
    paths = {
        c["constructPath"] for p in report["pluginReports"] for v in p["violations"] for c in v["violatingConstructs"]
    }
    assert all(path.startswith("sdmw-nag-probe/") for path in paths), paths


# 2. Each service stack stands alone: the same template without the core, no cross-stack reference


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_service_stack_alone_is_the_same_as_in_the_whole_app(service: str, full_synth: Synth, tmp_path: Path):
    alone = synth(tmp_path, context={"only": service})
    assert list(alone.templates) == [stack_name(service)]
    template, in_app = alone.templates[stack_name(service)], service_template(full_synth, service)
    for section in ("Resources", "Parameters", "Outputs", "Conditions", "Rules"):
        assert template.get(section) == in_app.get(section), f"{service}: {section} differ when synthesized alone"
    # Alone it needs only its assets; in the app, at most a deploy-order dependency on the core (no reference).
    assert set(alone.dependencies[stack_name(service)]) <= {f"{stack_name(service)}.assets"}
    assert set(full_synth.dependencies[stack_name(service)]) <= {f"{stack_name(service)}.assets", stack_name("core")}


def test_no_template_imports_or_exports_a_value(full_synth: Synth):
    for name, template in full_synth.templates.items():
        assert find_all(template, "Fn::ImportValue") == [], name
        exported = [output for output, value in template.get("Outputs", {}).items() if "Export" in value]
        assert exported == [], f"{name} exports {exported}"


# 3. Queues, dead letters, functions and their alarms


def queues(template: dict[str, Any]) -> tuple[dict[str, dict], dict[str, dict]]:
    """(queues that feed something, their dead-letter queues), by logical id."""
    all_queues = of_type(template, "AWS::SQS::Queue")
    dlq_ids = {
        ref_id(props["RedrivePolicy"]["deadLetterTargetArn"])
        for props in all_queues.values()
        if "RedrivePolicy" in props
    }
    return (
        {i: p for i, p in all_queues.items() if i not in dlq_ids},
        {i: p for i, p in all_queues.items() if i in dlq_ids},
    )


def alarms_on(template: dict[str, Any], namespace: str, metric: str, dimension: str) -> dict[str, dict]:
    """Alarm properties by the logical id of the resource their one dimension names."""
    found = {}
    for props in of_type(template, "AWS::CloudWatch::Alarm").values():
        if props.get("Namespace") == namespace and props.get("MetricName") == metric:
            dimensions = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
            if dimension in dimensions:
                found[ref_id(dimensions[dimension])] = props
    return found


def assert_alarm_notifies_operators(alarm: dict[str, Any]) -> None:
    assert [render(action) for action in alarm["AlarmActions"]] == [ALARM_TOPIC_ARN]
    assert alarm["Threshold"] >= 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_queue_has_a_dead_letter_queue_and_every_dlq_an_alarm(service: str, full_synth: Synth):
    resources = BY_NAME[service]
    template = service_template(full_synth, service)
    fed, dlqs = queues(template)
    all_queues = of_type(template, "AWS::SQS::Queue")
    assert len(fed) == 1 and len(dlqs) == 1, f"{service}: queues {sorted(all_queues)}"
    for queue_id, props in fed.items():
        redrive = props.get("RedrivePolicy")
        assert redrive, f"{service}: {queue_id} has no dead-letter queue"
        dlq_id = ref_id(redrive["deadLetterTargetArn"])
        assert dlq_id in all_queues, f"{service}: {queue_id}'s DLQ is not in its own stack"
        assert redrive["maxReceiveCount"] == resources.queue.max_receive_count
        assert props["QueueName"] == resources.queue_name(PREFIX)
        assert props["VisibilityTimeout"] == resources.queue.visibility_timeout_s
    for props in dlqs.values():
        assert props["QueueName"] == resources.dlq_name(PREFIX)
        assert props["MessageRetentionPeriod"] == resources.queue.dlq_retention_s
        assert "RedrivePolicy" not in props
    dlq_alarms = alarms_on(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    for dlq_id in dlqs:
        assert dlq_id in dlq_alarms, f"{service}: no alarm on the messages waiting in {dlq_id}"
        assert_alarm_notifies_operators(dlq_alarms[dlq_id])


def functions_by_name(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """FunctionName -> (logical id, properties)."""
    return {props["FunctionName"]: (i, props) for i, props in of_type(template, "AWS::Lambda::Function").items()}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_function_is_traced_arm64_alarmed_and_runs_its_declared_handler(service: str, full_synth: Synth):
    resources = BY_NAME[service]
    template = service_template(full_synth, service)
    functions = functions_by_name(template)
    declared = {resources.function_name(PREFIX, f): f for f in resources.functions}
    assert set(functions) == set(declared), f"{service}: functions in the template differ from its declaration"
    error_alarms = alarms_on(template, "AWS/Lambda", "Errors", "FunctionName")
    mappings = of_type(template, "AWS::Lambda::EventSourceMapping")
    fed, _ = queues(template)
    for name, (function_id, props) in functions.items():
        function = declared[name]
        assert props.get("TracingConfig") == {"Mode": "Active"}, name
        assert props.get("Architectures") == ["arm64"], name
        assert props["Handler"] == function.handler, name
        assert props["Timeout"] == function.timeout_s and props["MemorySize"] == function.memory_mb, name
        assert function_id in error_alarms, f"{name} has no Errors alarm"
        assert_alarm_notifies_operators(error_alarms[function_id])
        own = [m for m in mappings.values() if ref_id(m["FunctionName"]) == function_id]
        if function.trigger == "queue":
            assert len(own) == 1, f"{name} is fed by the queue but has {len(own)} event source mappings"
            assert ref_id(own[0]["EventSourceArn"]) in fed
            assert "ReportBatchItemFailures" in own[0].get("FunctionResponseTypes", []), name
            assert own[0]["BatchSize"] == function.batch_size
        else:
            assert own == [], f"{name} is an HTTP function but reads the queue"


# 4. Least privilege: each function's role has the baseline and the declared grants, nothing else

LOG_ACTIONS = frozenset({"logs:CreateLogStream", "logs:PutLogEvents"})
#: Active tracing; X-Ray has no resource-level permissions.
XRAY_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
BUS_ACTIONS = frozenset({"events:PutEvents"})
#: The item operations the services' tables see (snapshots, read model, Powertools' idempotency records).
TABLE_ACTIONS = frozenset(
    {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"}
)
#: What Lambda's SQS event source needs of a queue-fed function's role.
QUEUE_ACTIONS = frozenset(
    {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }
)
#: The edge reads the API key's secret (API_KEYS_SECRET).
SECRET_ACTIONS = frozenset({"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"})
#: What a service that sends to its own queue and DLQ gets on each (``Queue.sends_to_itself``).
SEND_ACTIONS = frozenset({"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"})
#: The edge's API key, by name (made and kept outside the stacks): Secrets Manager adds six characters.
API_KEY_SECRET_ARN = (
    f"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{PREFIX}/api-key-??????"
)
#: The core's webhook signing key, by name: Secrets Manager adds six characters of its own.
WEBHOOK_SIGNING_KEY_ARN = (
    f"arn:${{AWS::Partition}}:secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:{PREFIX}-webhook-signing-key-??????"
)


def grant_arns(resource: str) -> list[str]:
    """A declared symbolic resource as the ARN the policy must name (written out here, not taken from infra)."""
    if resource == BUCKET:
        return [BUCKET_ARN]
    if resource == BUCKET_OBJECTS:
        return [f"{BUCKET_ARN}/*"]
    if resource == SAGEMAKER_ROLE:
        return [f"arn:{PARTITION}:iam::{ACCOUNT}:role/{PREFIX}-{CORE.sagemaker_role}"]
    if resource == ANY_RESOURCE:
        return ["*"]
    service, _, rest = resource.partition(":")
    if service == "iam":
        return [f"arn:{PARTITION}:iam::{ACCOUNT}:{rest}"]
    return [f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{rest}"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(template: dict[str, Any], function_props: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of every policy attached to the function's role (inline or AWS::IAM::Policy)."""
    role_id = ref_id(function_props["Role"])
    role = template["Resources"][role_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), f"{role_id} has managed policies: {role['ManagedPolicyArns']}"
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]
    statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if role_id in {ref_id(r) for r in policy.get("Roles", [])}:
            statements.extend(policy["PolicyDocument"]["Statement"])
    for policy in of_type(template, "AWS::IAM::ManagedPolicy").values():
        assert role_id not in {ref_id(r) for r in policy.get("Roles", [])}, f"{role_id} has a managed policy"
    return statements


def baseline(resources: ServiceResources, trigger: str) -> frozenset[str]:
    actions = LOG_ACTIONS | XRAY_ACTIONS | BUS_ACTIONS
    if resources.table:
        actions |= TABLE_ACTIONS
    if trigger == "queue":
        actions |= QUEUE_ACTIONS
    if trigger == "http":
        actions |= SECRET_ACTIONS
    if resources.signs_webhooks:
        actions |= {"secretsmanager:GetSecretValue"}
    if resources.queue and resources.queue.sends_to_itself:
        actions |= SEND_ACTIONS
    return actions


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_function_roles_have_the_baseline_and_the_declared_grants_only(service: str, full_synth: Synth):
    resources = BY_NAME[service]
    template = service_template(full_synth, service)
    declared_actions = {action for grant in resources.grants for action in grant.actions}
    roles = set()
    for name, (_, props) in functions_by_name(template).items():
        function = next(f for f in resources.functions if resources.function_name(PREFIX, f) == name)
        roles.add(ref_id(props["Role"]))
        statements = role_statements(template, props)
        actions = {action for s in statements for action in as_list(s["Action"])}
        expected = baseline(resources, function.trigger) | declared_actions
        assert actions == expected, (
            f"{name}: granted but not expected {sorted(actions - expected)}; "
            f"expected but not granted {sorted(expected - actions)}"
        )
        assert all(s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s for s in statements)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_every_statement_names_the_resources_it_is_for(service: str, full_synth: Synth):
    """Each baseline statement on the stack's own resources; each grant on its declared ARN; "*" only where due."""
    resources = BY_NAME[service]
    template = service_template(full_synth, service)
    (table_id,) = of_type(template, "AWS::DynamoDB::Table") or [None]
    fed, dead_letters = queues(template)
    (queue_id,) = fed
    dlq_id = next(iter(dead_letters), None)
    for name, (_, props) in functions_by_name(template).items():
        log_group = ref_id(props["LoggingConfig"]["LogGroup"])
        for statement in role_statements(template, props):
            actions = frozenset(as_list(statement["Action"]))
            arns = [render(r) for r in as_list(statement["Resource"])]
            grant = next((g for g in resources.grants if frozenset(g.actions) == actions), None)
            if grant is not None:
                assert arns == grant_arns(grant.resource), f"{name}: {sorted(actions)} on {arns}"
                assert statement.get("Condition", {}) == grant.conditions, f"{name}: {sorted(actions)}"
                continue
            if actions <= XRAY_ACTIONS:
                expected = ["*"]
            elif actions <= LOG_ACTIONS:
                expected = [f"${{{log_group}.Arn}}"]
            elif actions <= BUS_ACTIONS:
                expected = [BUS_ARN]
            elif actions <= TABLE_ACTIONS:  # the table and each of its indexes, by name
                table_arn = f"${{{table_id}.Arn}}"
                expected = [table_arn, *(f"{table_arn}/index/{index.name}" for index in resources.table.indexes)]
            elif actions <= QUEUE_ACTIONS:
                expected = [f"${{{queue_id}.Arn}}"]
            elif actions <= SEND_ACTIONS and resources.queue.sends_to_itself:  # its queue, or its DLQ
                expected = arns if arns in ([f"${{{queue_id}.Arn}}"], [f"${{{dlq_id}.Arn}}"]) else ["queue or DLQ"]
            elif actions == {"secretsmanager:GetSecretValue"} and resources.signs_webhooks:
                expected = [WEBHOOK_SIGNING_KEY_ARN]
            elif actions <= SECRET_ACTIONS and props["Environment"]["Variables"].get("API_KEYS_SECRET"):
                expected = [API_KEY_SECRET_ARN]
            else:
                raise AssertionError(f"{name}: a statement from neither the baseline nor a grant: {statement}")
            assert arns == expected, f"{name}: {sorted(actions)} on {arns}, not {expected}"
            assert "Condition" not in statement, f"{name}: {statement}"
        # The only statements on every resource: X-Ray's, and grants declared on ANY_RESOURCE (with a reason).
        any_resource = {frozenset(g.actions) for g in resources.grants if g.resource == ANY_RESOURCE}
        for statement in role_statements(template, props):
            if "*" in as_list(statement["Resource"]):
                actions = frozenset(as_list(statement["Action"]))
                assert actions <= XRAY_ACTIONS or actions in any_resource, f"{name}: {statement}"


def test_bucket_grants_name_the_core_bucket(full_synth: Synth):
    core = full_synth.templates[stack_name("core")]
    data_bucket = f"{PREFIX}-{CORE.bucket}-"
    buckets = of_type(core, "AWS::S3::Bucket").values()
    (bucket,) = [p for p in buckets if render(p["BucketName"]).startswith(data_bucket)]
    assert render(bucket["BucketName"]) == f"{PREFIX}-{CORE.bucket}-{ACCOUNT}-{REGION}"
    seen = 0
    for service in SERVICE_NAMES:
        template = service_template(full_synth, service)
        for policy in of_type(template, "AWS::IAM::Policy").values():
            for statement in policy["PolicyDocument"]["Statement"]:
                if any(action.startswith("s3:") for action in as_list(statement["Action"])):
                    seen += 1
                    arns = [render(r) for r in as_list(statement["Resource"])]
                    assert arns in ([BUCKET_ARN], [f"{BUCKET_ARN}/*"]), f"{service}: {statement}"
    assert seen >= 4  # api-gateway, asset-registry (2), inference-dispatcher, training-manager (2)


# 5. The declared grants cover exactly what the code calls

#: boto3 operation (a client or table method, or the name a paginator or presigned URL is made for) -> IAM action.
OPERATION_ACTIONS = {
    # S3 (HeadObject is authorized as GetObject; multipart uploads and their parts as PutObject)
    "head_object": "s3:GetObject",
    "get_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "upload_part": "s3:PutObject",
    "create_multipart_upload": "s3:PutObject",
    "complete_multipart_upload": "s3:PutObject",
    "abort_multipart_upload": "s3:AbortMultipartUpload",
    "list_parts": "s3:ListMultipartUploadParts",
    "list_objects_v2": "s3:ListBucket",
    "list_objects": "s3:ListBucket",
    "delete_object": "s3:DeleteObject",
    "delete_objects": "s3:DeleteObject",
    "list_multipart_uploads": "s3:ListBucketMultipartUploads",
    "copy_object": "s3:PutObject",
    # SageMaker and its runtime
    "create_model": "sagemaker:CreateModel",
    "delete_model": "sagemaker:DeleteModel",
    "create_endpoint_config": "sagemaker:CreateEndpointConfig",
    "delete_endpoint_config": "sagemaker:DeleteEndpointConfig",
    "describe_endpoint_config": "sagemaker:DescribeEndpointConfig",
    "create_endpoint": "sagemaker:CreateEndpoint",
    "delete_endpoint": "sagemaker:DeleteEndpoint",
    "describe_endpoint": "sagemaker:DescribeEndpoint",
    "update_endpoint_weights_and_capacities": "sagemaker:UpdateEndpointWeightsAndCapacities",
    "invoke_endpoint_async": "sagemaker:InvokeEndpointAsync",
    "invoke_endpoint": "sagemaker:InvokeEndpoint",
    "create_training_job": "sagemaker:CreateTrainingJob",
    "describe_training_job": "sagemaker:DescribeTrainingJob",
    "stop_training_job": "sagemaker:StopTrainingJob",
    "add_tags": "sagemaker:AddTags",
    # Application Auto Scaling
    "register_scalable_target": "application-autoscaling:RegisterScalableTarget",
    "deregister_scalable_target": "application-autoscaling:DeregisterScalableTarget",
    "put_scaling_policy": "application-autoscaling:PutScalingPolicy",
    "delete_scaling_policy": "application-autoscaling:DeleteScalingPolicy",
    # CloudWatch alarms
    "put_metric_alarm": "cloudwatch:PutMetricAlarm",
    "delete_alarms": "cloudwatch:DeleteAlarms",
    "describe_alarms": "cloudwatch:DescribeAlarms",
    # CloudWatch Logs (the retention of SageMaker's log groups)
    "create_log_group": "logs:CreateLogGroup",
    "put_retention_policy": "logs:PutRetentionPolicy",
    # CloudWatch Logs (jobs' log lines, read by the edge)
    "describe_log_streams": "logs:DescribeLogStreams",
    "filter_log_events": "logs:FilterLogEvents",
    # Secrets Manager (the edge's API keys)
    "get_secret_value": "secretsmanager:GetSecretValue",
    # The baseline: the service's table, the bus, its queue
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "batch_writer": "dynamodb:BatchWriteItem",
    "put_events": "events:PutEvents",
    "receive_message": "sqs:ReceiveMessage",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "get_queue_attributes": "sqs:GetQueueAttributes",
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
}

#: Methods of boto3 resources that are no operation of their client (the client's own are found by name).
RESOURCE_METHODS = {"batch_writer"}  # Table.batch_writer() -> BatchWriteItem

#: Classes of libraries that call AWS with a client the code hands them -> the actions they need.
LIBRARY_ACTIONS = {
    # Powertools' idempotency records, in the service's own table.
    "DynamoDBPersistenceLayer": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
}

#: Declared actions that no boto3 call names, each with the actions whose calls make AWS check it, and why.
IMPLIED_ACTIONS = {
    # CreateModel (ExecutionRoleArn) and CreateTrainingJob (RoleArn) hand SageMaker its execution role.
    "iam:PassRole": {"sagemaker:CreateModel", "sagemaker:CreateTrainingJob"},
    # Training jobs are created with Tags, which SageMaker authorizes as AddTags on the job.
    "sagemaker:AddTags": {"sagemaker:CreateTrainingJob"},
    # Application Auto Scaling acts with the caller's rights: registering a SageMaker variant checks that the
    # caller may describe the endpoint's config and change its weights and capacities, and the first
    # registration creates its service-linked role.
    "sagemaker:DescribeEndpointConfig": {"application-autoscaling:RegisterScalableTarget"},
    "sagemaker:UpdateEndpointWeightsAndCapacities": {"application-autoscaling:RegisterScalableTarget"},
    "iam:CreateServiceLinkedRole": {"application-autoscaling:RegisterScalableTarget"},
    # A target-tracking policy creates, reads and removes its TargetTracking-* alarms with the caller's rights.
    "cloudwatch:DescribeAlarms": {"application-autoscaling:PutScalingPolicy"},
}

#: Calls that name the operation as a string argument (the paginator's or presigned URL's operation).
OPERATION_BY_NAME = {"get_paginator", "generate_presigned_url", "get_waiter"}
#: Calls that make a boto3 client or resource: their first argument is the AWS service.
CLIENT_FACTORIES = {"client", "resource", "counted_client"}


def _module_file(module: str) -> Path | None:
    """``service_kit.storage`` -> its file under services/service-kit, if it is a module of service_kit."""
    parts = module.split(".")
    if parts[0] != "service_kit":
        return None
    root = SHARED_PACKAGES["service_kit"].parent
    for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _service_kit_imports(tree: ast.AST) -> set[str]:
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names if alias.name.startswith("service_kit")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("service_kit"):
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}  # from service_kit import aws
    return modules


def _local_only(path: Path, root: Path) -> bool:
    relative = (Path(root.name) / path.relative_to(root)).as_posix()
    return any(fnmatch.fnmatch(relative, pattern) for pattern in LOCAL_ONLY)


@cache
def code_files(service: str) -> tuple[Path, ...]:
    """The service's package (no tests, no local-only workers) and every service_kit module it reaches."""
    package = service_package(service)
    kit = SHARED_PACKAGES["service_kit"]
    files = [
        path
        for path in sorted(package.rglob("*.py"))
        if "tests" not in path.relative_to(package).parts and not _local_only(path, package)
    ]
    todo, seen = list(files), set(files)
    while todo:
        for module in _service_kit_imports(ast.parse(todo.pop().read_text())):
            path = _module_file(module)
            if path and path not in seen and not _local_only(path, kit):
                seen.add(path)
                files.append(path)
                todo.append(path)
    return tuple(files)


@cache
def operation_names(aws_service: str) -> frozenset[str]:
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(aws_service)
    return frozenset(xform_name(name) for name in model.operation_names)


def calls_in(files: tuple[Path, ...]) -> tuple[set[str], set[str], set[str]]:
    """(AWS services the code makes clients for, operation-like names it uses, library classes it names)."""
    services, names, libraries = set(), set(), set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    if node.func.attr in CLIENT_FACTORIES:
                        services.add(first.value)
                    elif node.func.attr in OPERATION_BY_NAME:
                        names.add(first.value)
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            if isinstance(node, ast.Name | ast.alias):
                libraries.add(node.id if isinstance(node, ast.Name) else node.name)
    return services, names, libraries & set(LIBRARY_ACTIONS)


def needed_actions(service: str) -> tuple[set[str], set[str]]:
    """(the IAM actions the code's AWS calls need, operations of its clients this test has no action for)."""
    aws_services, names, libraries = calls_in(code_files(service))
    known = frozenset().union(*(operation_names(s) for s in aws_services)) if aws_services else frozenset()
    operations = {name for name in names if name in known or name in RESOURCE_METHODS}
    needed = {OPERATION_ACTIONS[op] for op in operations if op in OPERATION_ACTIONS}
    for library in libraries:
        needed |= LIBRARY_ACTIONS[library]
    return needed, operations - set(OPERATION_ACTIONS)


def granted_actions(full_synth: Synth, service: str) -> set[str]:
    template = service_template(full_synth, service)
    return {
        action
        for _, props in functions_by_name(template).values()
        for statement in role_statements(template, props)
        for action in as_list(statement["Action"])
    }


def test_the_scan_reads_what_the_functions_run():
    """The scan must see the shared code the services reach, and never the local-only workers."""
    storage = SHARED_PACKAGES["service_kit"] / "storage.py"
    events = SHARED_PACKAGES["service_kit"] / "events.py"
    assert storage in code_files("asset-registry") and storage in code_files("training-manager")
    assert all(events in code_files(service) for service in SERVICE_NAMES)
    for service in SERVICE_NAMES:
        assert not [p for p in code_files(service) if p.name == "worker.py" and "entrypoints" in p.parts]
        assert SHARED_PACKAGES["service_kit"] / "worker.py" not in code_files(service)
    needed, _ = needed_actions("asset-registry")
    assert {"s3:ListBucket", "s3:ListMultipartUploadParts", "s3:PutObject", "events:PutEvents"} <= needed


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_declared_grants_cover_the_code_and_nothing_more(service: str, full_synth: Synth):
    needed, unmapped = needed_actions(service)
    assert not unmapped, f"{service} calls AWS operations this test cannot map to IAM actions: {sorted(unmapped)}"
    granted = granted_actions(full_synth, service)
    assert needed <= granted, f"{service}: the code calls what is not granted: {sorted(needed - granted)}"
    declared: list[Grant] = list(BY_NAME[service].grants)
    unused = {
        action
        for grant in declared
        for action in grant.actions
        if action not in needed and not (IMPLIED_ACTIONS.get(action, set()) & needed)
    }
    assert not unused, f"{service}: declared grants the code never uses: {sorted(unused)}"


# 6. The REST API


@pytest.fixture(scope="module")
def api(full_synth: Synth) -> dict[str, Any]:
    return service_template(full_synth, "api-gateway")


def api_methods(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, path) -> the method's properties, paths rebuilt from PathPart and ParentId."""
    resources = of_type(template, "AWS::ApiGateway::Resource")

    def path(resource_id: Any) -> str:
        if isinstance(resource_id, dict) and "Fn::GetAtt" in resource_id:
            assert resource_id["Fn::GetAtt"][1] == "RootResourceId"
            return ""
        props = resources[ref_id(resource_id)]
        return f"{path(props['ParentId'])}/{props['PathPart']}"

    return {
        (props["HttpMethod"], path(props["ResourceId"]) or "/"): props
        for props in of_type(template, "AWS::ApiGateway::Method").values()
    }


def test_the_api_has_a_traced_prod_stage(api: dict[str, Any]):
    (rest_api_id,) = of_type(api, "AWS::ApiGateway::RestApi")
    stages = [p for p in of_type(api, "AWS::ApiGateway::Stage").values() if ref_id(p["RestApiId"]) == rest_api_id]
    assert [s["StageName"] for s in stages] == ["prod"]
    assert stages[0].get("TracingEnabled") is True


def test_every_method_needs_the_key_but_the_cors_preflight(api: dict[str, Any]):
    methods = api_methods(api)
    (edge_id,) = [i for i, p in of_type(api, "AWS::Lambda::Function").items() if p["FunctionName"].endswith("-edge")]
    for (method, path), props in methods.items():
        if method == "OPTIONS":
            assert props["AuthorizationType"] == "NONE", path
            assert props.get("ApiKeyRequired", False) is False, path
            assert props["Integration"]["Type"] == "MOCK", path
        else:
            assert props.get("ApiKeyRequired") is True, f"{method} {path} takes no key"
            assert props["Integration"]["Type"] == "AWS_PROXY", f"{method} {path}"
            assert f"${{{edge_id}.Arn}}" in render(props["Integration"]["Uri"]), f"{method} {path}"
    paths = {path for _, path in methods}
    assert all(("OPTIONS", path) in methods for path in paths), "a resource without a CORS preflight"


def test_every_served_route_and_seed_route_is_a_method(api: dict[str, Any]):
    methods = {key for key in api_methods(api) if key[0] != "OPTIONS"}
    served = set(served_routes())
    assert served - methods == set(), "routes the edge serves that the API does not front"
    assert methods - served == set(), "methods the API fronts that the edge does not serve"
    seed = {(route.method, route.path) for route in SEED_ROUTES} | {("GET", DATASET_DATA_ALIAS)}
    assert seed <= served, f"seed routes not served: {sorted(seed - served)}"


def test_a_usage_plan_links_the_key_to_the_stage(api: dict[str, Any]):
    (rest_api_id,) = of_type(api, "AWS::ApiGateway::RestApi")
    (stage_id,) = of_type(api, "AWS::ApiGateway::Stage")
    (key_id,) = of_type(api, "AWS::ApiGateway::ApiKey")
    plans = of_type(api, "AWS::ApiGateway::UsagePlan")
    linked = {
        ref_id(p["UsagePlanId"])
        for p in of_type(api, "AWS::ApiGateway::UsagePlanKey").values()
        if ref_id(p["KeyId"]) == key_id and p["KeyType"] == "API_KEY"
    }
    assert linked, "the API key is in no usage plan"
    stages = {(ref_id(s["ApiId"]), ref_id(s["Stage"])) for plan in linked for s in plans[plan].get("ApiStages", [])}
    assert (rest_api_id, stage_id) in stages
    key = of_type(api, "AWS::ApiGateway::ApiKey")[key_id]
    assert key.get("Enabled", True) is True
    # The kept secret's "key" field, resolved by CloudFormation: a rotation's next key beside it changes nothing.
    assert key["Value"] == f"{{{{resolve:secretsmanager:{PREFIX}/api-key:SecretString:key::}}}}"


def test_gateway_errors_carry_the_cors_origin(api: dict[str, Any]):
    responses = {p["ResponseType"]: p for p in of_type(api, "AWS::ApiGateway::GatewayResponse").values()}
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        assert response_type in responses, response_type
        headers = responses[response_type].get("ResponseParameters", {})
        assert headers.get("gatewayresponse.header.Access-Control-Allow-Origin") == "'*'", response_type


def test_the_edge_reads_its_key_from_the_secret_and_knows_its_stage(api: dict[str, Any]):
    (edge,) = [p for p in of_type(api, "AWS::Lambda::Function").values() if p["FunctionName"].endswith("-edge")]
    variables = edge["Environment"]["Variables"]
    assert variables["API_STAGE"] == "prod"
    # The secret is made and kept outside the stacks (infra.aws.kept_secrets), and named.
    assert variables["API_KEYS_SECRET"] == f"{PREFIX}/api-key"
    assert not of_type(api, "AWS::SecretsManager::Secret")


# 7. The core stack


@pytest.fixture(scope="module")
def core(full_synth: Synth) -> dict[str, Any]:
    return full_synth.templates[stack_name("core")]


def core_bucket(core: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (i, p)
        for i, p in of_type(core, "AWS::S3::Bucket").items()
        if render(p.get("BucketName", "")) == f"{PREFIX}-{CORE.bucket}-{ACCOUNT}-{REGION}"
    ]
    return found


def test_the_bucket_is_private_and_tls_only(core: dict[str, Any]):
    bucket_id, bucket = core_bucket(core)
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    policies = [p for p in of_type(core, "AWS::S3::BucketPolicy").values() if ref_id(p["Bucket"]) == bucket_id]
    assert policies, "the bucket has no bucket policy"
    denials = [
        s
        for policy in policies
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert denials, "no statement denies requests without TLS"
    assert {render(r) for s in denials for r in as_list(s["Resource"])} >= {
        f"${{{bucket_id}.Arn}}",
        f"${{{bucket_id}.Arn}}/*",
    }


def test_the_bucket_aborts_incomplete_uploads_and_lets_browsers_put_parts(core: dict[str, Any]):
    _, bucket = core_bucket(core)
    aborts = [
        rule
        for rule in bucket["LifecycleConfiguration"]["Rules"]
        if rule.get("Status") == "Enabled" and "AbortIncompleteMultipartUpload" in rule
    ]
    assert [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in aborts] == [
        CORE.abort_incomplete_uploads_after_days
    ]
    assert not aborts[0].get("Prefix") and not aborts[0].get("TagFilters"), "the rule must cover every upload"
    cors = bucket["CorsConfiguration"]["CorsRules"]
    assert any("PUT" in rule["AllowedMethods"] and "ETag" in rule.get("ExposedHeaders", []) for rule in cors)


def test_the_core_has_its_topics_repository_role_and_image_parameter(core: dict[str, Any]):
    topics = {p.get("TopicName") for p in of_type(core, "AWS::SNS::Topic").values()}
    assert topics >= {f"{PREFIX}-async-success", f"{PREFIX}-async-error", f"{PREFIX}-alarms"}
    assert {f"{PREFIX}-{t}" for t in CORE.topics} <= topics
    assert [p.get("RepositoryName") for p in of_type(core, "AWS::ECR::Repository").values()] == [
        f"{PREFIX}-{CORE.runtime_repository}"
    ]
    (role,) = [p for p in of_type(core, "AWS::IAM::Role").values() if p.get("RoleName") == "sdmw-sagemaker-execution"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}}
    ]
    names = {p["Name"] for p in of_type(core, "AWS::SSM::Parameter").values()}
    assert "/sdmw/core/runtime-image-uri" in names
    buses = [p["Name"] for p in of_type(core, "AWS::Events::EventBus").values()]
    assert buses == [f"{PREFIX}-{CORE.bus}"]


def test_the_image_is_an_asset_unless_a_runtime_image_is_given(full_synth: Synth, tmp_path: Path):
    image_assets = json.loads((full_synth.outdir / "sdmw-core.assets.json").read_text()).get("dockerImages", {})
    assert len(image_assets) == 1, "without runtime_image the core builds the sd-runtime image asset"
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sdmw-sd-runtime:ci-1234"
    pinned = synth(tmp_path, context={"runtime_image": uri})
    core = pinned.templates[stack_name("core")]
    (parameter,) = [
        p for p in of_type(core, "AWS::SSM::Parameter").values() if p["Name"] == "/sdmw/core/runtime-image-uri"
    ]
    assert parameter["Value"] == uri
    assert json.loads((tmp_path / "sdmw-core.assets.json").read_text()).get("dockerImages", {}) == {}


# 8. cfn-lint on every template


def cfn_lint() -> list[str]:
    beside = Path(sys.executable).with_name("cfn-lint")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("cfn-lint")
    assert found, "cfn-lint is not installed (requirements.txt pins it)"
    return [found]


def test_cfn_lint_finds_nothing(full_synth: Synth, tmp_path: Path):
    config = yaml.safe_load((REPO / ".cfnlintrc.yaml").read_text())
    ignored = config.get("ignore_checks", [])
    templates = sorted(str(full_synth.outdir / f"{name}.template.json") for name in full_synth.templates)
    # Run away from the repository's config so that its template glob does not add build/cdk.out.
    result = subprocess.run(
        [*cfn_lint(), *(arg for check in ignored for arg in ("--ignore-checks", check)), "--", *templates],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
