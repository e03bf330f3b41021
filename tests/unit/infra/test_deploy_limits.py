"""AWS's deploy-time limits (``infra.aws.limits``): over the whole app's synth, and each check on a small template.

The first test is the one that matters: the app as synthesized must deploy. The
others build a two-stack assembly by hand (a core with the alarm topic, a
service with a queue, a function behind a REST API, an alarm), which passes
every check, and break one thing at a time.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from infra.aws import limits
from tests.unit.infra.conftest import Synth

# --- The whole app -----------------------------------------------------------------------------------------------


def test_the_synthesized_app_is_within_every_deploy_time_limit(full_synth: Synth):
    notes: list[str] = []
    violations = limits.check_all(full_synth.outdir, notes=notes)
    assert violations == [], "\n".join(str(v) for v in violations)
    assert any(note.startswith("Prefix: 'sdmw'") for note in notes), notes


# --- A small assembly that passes, to break --------------------------------------------------------------------


def join(*parts: Any) -> dict[str, Any]:
    return {"Fn::Join": ["", list(parts)]}


PARTITION, REGION, ACCOUNT = {"Ref": "AWS::Partition"}, {"Ref": "AWS::Region"}, {"Ref": "AWS::AccountId"}
ALARM_TOPIC_ARN = join("arn:", PARTITION, ":sns:", REGION, ":", ACCOUNT, ":sdmw-alarms")
TLS_ONLY = {
    "Sid": "AllowPublishThroughSSLOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "sns:Publish",
    "Resource": {"Ref": "Topic"},
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
CLOUDWATCH_MAY_PUBLISH = {
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": "sns:Publish",
    "Resource": {"Ref": "Topic"},
    "Condition": {
        "ArnLike": {"aws:SourceArn": join("arn:", PARTITION, ":cloudwatch:", REGION, ":", ACCOUNT, ":alarm:*")}
    },
}
EDGE_LIMITS = SimpleNamespace(MAX_BODY_BYTES=6_000_000, MAX_RESPONSE_BYTES=6_000_000)


def permission(source: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": ["Edge", "Arn"]},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": join("arn:", PARTITION, ":execute-api:", REGION, ":", ACCOUNT, ":", {"Ref": "Api"}, source),
        },
    }


def core_template() -> dict[str, Any]:
    return {
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "sdmw-alarms"}},
            "TopicPolicy": {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {
                    "Topics": [{"Ref": "Topic"}],
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [TLS_ONLY, CLOUDWATCH_MAY_PUBLISH]},
                },
            },
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "RetainExceptOnCreate",
                "Properties": {"BucketName": join("sdmw-bucket-", ACCOUNT, "-", REGION)},
            },
            "SigningKey": {
                "Type": "AWS::SecretsManager::Secret",
                "DeletionPolicy": "RetainExceptOnCreate",
                "Properties": {"Name": "sdmw-signing-key"},
            },
            "Parameter": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/sdmw/core/image", "Type": "String", "Value": "image"},
            },
        }
    }


def service_template() -> dict[str, Any]:
    return {
        "Resources": {
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "DeletionPolicy": "RetainExceptOnCreate",
                "Properties": {"TableName": "sdmw-svc"},
            },
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "sdmw-svc", "VisibilityTimeout": 180}},
            "Logs": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": "/aws/lambda/sdmw-svc-edge", "RetentionInDays": 30},
            },
            "Edge": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"FunctionName": "sdmw-svc-edge", "Timeout": 30, "Handler": "api_gateway.handler"},
            },
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}, "FunctionName": {"Ref": "Edge"}},
            },
            "Alarm": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {"AlarmName": "sdmw-svc-errors", "AlarmActions": [ALARM_TOPIC_ARN]},
            },
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "sdmw-api"}},
            "Stage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {
                    "RestApiId": {"Ref": "Api"},
                    "StageName": "prod",
                    "MethodSettings": [{"HttpMethod": "*", "ResourcePath": "/*", "LoggingLevel": "ERROR"}],
                },
            },
            "ExecutionLogs": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {
                    "LogGroupName": join("API-Gateway-Execution-Logs_", {"Ref": "Api"}, "/prod"),
                    "RetentionInDays": 30,
                },
            },
            "Method": {
                "Type": "AWS::ApiGateway::Method",
                "Properties": {
                    "HttpMethod": "POST",
                    "RestApiId": {"Ref": "Api"},
                    "Integration": {
                        "Type": "AWS_PROXY",
                        "Uri": join(
                            "arn:",
                            PARTITION,
                            ":apigateway:",
                            REGION,
                            ":lambda:path/2015-03-31/functions/",
                            {"Fn::GetAtt": ["Edge", "Arn"]},
                            "/invocations",
                        ),
                    },
                },
            },
            "Permission": permission("/*/*/*"),
            "WorkerPolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyDocument": {
                        "Statement": [
                            {"Effect": "Allow", "Action": ["sagemaker:CreateTrainingJob"], "Resource": "*"},
                            {
                                "Effect": "Allow",
                                "Action": ["logs:CreateLogGroup", "logs:PutRetentionPolicy"],
                                "Resource": join(
                                    "arn:",
                                    PARTITION,
                                    ":logs:",
                                    REGION,
                                    ":",
                                    ACCOUNT,
                                    ":log-group:/aws/sagemaker/TrainingJobs",
                                ),
                            },
                        ]
                    }
                },
            },
        }
    }


def write_assembly(
    outdir: Path, templates: dict[str, dict[str, Any]], via_s3: bool = True, prefix: str = "sdmw"
) -> Path:
    """A cloud assembly as ``cdk synth`` writes one: manifest.json and one template file per stack."""
    outdir.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for name, template in templates.items():
        (outdir / f"{name}.template.json").write_text(json.dumps(template, indent=1))
        properties: dict[str, Any] = {"templateFile": f"{name}.template.json", "tags": {"project": prefix}}
        if via_s3:
            properties["stackTemplateAssetObjectUrl"] = f"s3://cdk-assets/{name}.json"
        artifacts[name] = {"type": "aws:cloudformation:stack", "properties": properties}
    artifacts["Tree"] = {"type": "cdk:tree", "properties": {"file": "tree.json"}}
    (outdir / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": artifacts}))
    return outdir


def violations_of(
    tmp_path: Path,
    core: dict[str, Any] | None = None,
    service: dict[str, Any] | None = None,
    **options: Any,
) -> list[str]:
    templates = {"sdmw-core": core or core_template(), "sdmw-svc": service or service_template()}
    options.setdefault("edge_limits", EDGE_LIMITS)
    return [str(v) for v in limits.check_all(write_assembly(tmp_path / "cdk.out", templates), **options)]


def test_the_hand_made_assembly_passes_every_check(tmp_path: Path):
    notes: list[str] = []
    assert violations_of(tmp_path, notes=notes) == []
    assert "Lambda resource policy: largest sdmw-svc/Edge, 1 statement(s)" in notes[0]
    assert any("the longest that fits every name has" in note for note in notes), notes


# --- 1. A function's resource-based policy ----------------------------------------------------------------------


def test_one_permission_per_method_overflows_the_functions_policy(tmp_path: Path):
    service = service_template()
    del service["Resources"]["Permission"]
    for n in range(128):
        service["Resources"][f"Permission{n}"] = permission(f"/prod/GET/route/number-{n}")
    [violation] = violations_of(tmp_path, service=service)
    assert violation.startswith("[lambda-policy] sdmw-svc/Edge: resource-based policy of 128 AWS::Lambda::Permission")
    assert "> 20,480 (Lambda quotas: Function resource-based policy: 20 KB)" in violation


def test_a_permission_renders_as_lambda_stores_it(tmp_path: Path):
    assembly = limits.load(write_assembly(tmp_path, {"sdmw-svc": service_template()}))
    [stack] = assembly.stacks
    statement = limits.permission_statement(stack, "Permission", stack.props("Permission"))
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Resource"] == "arn:aws-iso-f:lambda:us-isof-south-1:123456789012:function:sdmw-svc-edge"
    assert statement["Condition"] == {
        "ArnLike": {"AWS:SourceArn": "arn:aws-iso-f:execute-api:us-isof-south-1:123456789012:abcdefghij/*/*/*"}
    }
    assert len(statement["Sid"]) <= 100


# --- 2. Names -----------------------------------------------------------------------------------------------


def test_a_function_name_over_64_characters(tmp_path: Path):
    service = service_template()
    service["Resources"]["Edge"]["Properties"]["FunctionName"] = "sdmw-" + "f" * 60
    [violation] = violations_of(tmp_path, service=service)
    assert violation == (
        f"[name] sdmw-svc/Edge: AWS::Lambda::Function.FunctionName 'sdmw-{'f' * 60}' has 65 characters > 64 "
        "(Lambda CreateFunction: If you specify only the function name, it is limited to 64 characters in length)"
    )


def test_a_bucket_name_counts_the_account_and_the_longest_region(tmp_path: Path):
    core = core_template()
    # 24 + 1 + 12 + 1 + 15 (us-isof-south-1) = 53 fits; 11 more characters do not.
    core["Resources"]["Bucket"]["Properties"]["BucketName"] = join("sdmw-bucket-" + "b" * 23, "-", ACCOUNT, "-", REGION)
    [violation] = violations_of(tmp_path, core=core)
    assert "[name] sdmw-core/Bucket: AWS::S3::Bucket.BucketName" in violation
    assert "-123456789012-us-isof-south-1' has 64 characters > 63" in violation


def test_reserved_bucket_prefixes_and_ssm_depth(tmp_path: Path):
    core = core_template()
    core["Resources"]["Bucket"]["Properties"]["BucketName"] = "xn--sdmw-bucket"
    core["Resources"]["Parameter"]["Properties"]["Name"] = "/" + "/".join(["level"] * 16)
    found = violations_of(tmp_path, core=core)
    assert any("starts with the reserved prefix 'xn--'" in v for v in found), found
    assert any("is 16 levels deep > 15" in v for v in found), found


def test_the_longest_prefix_that_fits_is_reported(tmp_path: Path):
    notes: list[str] = []
    violations_of(tmp_path, notes=notes)
    [prefix_note] = [note for note in notes if note.startswith("Prefix:")]
    # The bucket binds: sdmw-bucket-<12>-<15 characters> is 40 of 63, so the prefix may grow by 23.
    assert "the longest that fits every name has 27 characters" in prefix_note
    assert "AWS::S3::Bucket.BucketName" in prefix_note


# --- 3. Stack quotas ------------------------------------------------------------------------------------------


def test_501_resources(tmp_path: Path):
    service = service_template()
    for n in range(501 - len(service["Resources"])):
        service["Resources"][f"Handle{n}"] = {"Type": "AWS::CloudFormation::WaitConditionHandle"}
    [violation] = violations_of(tmp_path, service=service)
    assert violation.startswith("[stack] sdmw-svc/-: 501 resources > 500 (CloudFormation quotas: Resources:")


def test_a_template_over_51200_bytes_needs_s3(tmp_path: Path):
    service = service_template()
    service["Description"] = "x" * 1_000
    service["Metadata"] = {"padding": "x" * 60_000}
    write_assembly(tmp_path, {"sdmw-svc": service}, via_s3=False)
    found = [str(v) for v in limits.check_all(tmp_path, edge_limits=EDGE_LIMITS, partial=True)]
    assert any("template bytes (sent in the request, not via S3)" in v and "> 51,200" in v for v in found), found
    write_assembly(tmp_path, {"sdmw-svc": service}, via_s3=True)
    assert limits.check_all(tmp_path, edge_limits=EDGE_LIMITS, partial=True) == []


# --- 4. Payloads ------------------------------------------------------------------------------------------------


def test_a_10_mb_body_limit_does_not_fit_lambdas_6_mb(tmp_path: Path):
    edge = SimpleNamespace(MAX_BODY_BYTES=10 * 1024 * 1024)
    found = violations_of(tmp_path, edge_limits=edge)
    assert len(found) == 2, found
    body, response = found
    assert body.startswith("[payload] sdmw-svc/Edge (1 AWS_PROXY methods): MAX_BODY_BYTES 10,485,760 + proxy event")
    assert "> 6,291,456 (Lambda quotas: Invocation payload" in body
    assert "at most 6,250,496 fits" in body
    assert "api_gateway.limits has no MAX_RESPONSE_BYTES" in response


def test_a_body_limit_that_fits_passes_and_a_response_limit_over_6_mb_fails(tmp_path: Path):
    assert violations_of(tmp_path, edge_limits=SimpleNamespace(MAX_BODY_BYTES=6_250_496, MAX_RESPONSE_BYTES=1)) == []
    [violation] = violations_of(tmp_path, edge_limits=SimpleNamespace(MAX_BODY_BYTES=1, MAX_RESPONSE_BYTES=6_291_457))
    assert "MAX_RESPONSE_BYTES 6,291,457 > 6,291,456" in violation


# --- 5. Queue visibility ------------------------------------------------------------------------------------------


def test_a_visibility_timeout_under_six_function_timeouts(tmp_path: Path):
    service = service_template()
    service["Resources"]["Queue"]["Properties"]["VisibilityTimeout"] = 60
    [violation] = violations_of(tmp_path, service=service)
    assert violation.startswith(
        "[sqs-visibility] sdmw-svc/Mapping: queue sdmw-svc/Queue visibility timeout 60 s < 6 x function Edge "
        "timeout 30 s = 180 s"
    )


# --- 6. Removal policies -------------------------------------------------------------------------------------


def test_a_named_table_with_plain_retain(tmp_path: Path):
    service = service_template()
    service["Resources"]["Table"]["DeletionPolicy"] = "Retain"
    [violation] = violations_of(tmp_path, service=service)
    assert violation.startswith(
        "[removal] sdmw-svc/Table: AWS::DynamoDB::Table 'sdmw-svc' has a fixed name and DeletionPolicy Retain"
    )
    assert "use RetainExceptOnCreate" in violation


def test_a_named_secret_deleted_with_its_stack(tmp_path: Path):
    core = core_template()
    del core["Resources"]["SigningKey"]["DeletionPolicy"]
    [violation] = violations_of(tmp_path, core=core)
    assert violation.startswith(
        "[removal] sdmw-core/SigningKey: AWS::SecretsManager::Secret 'sdmw-signing-key' has a fixed name and "
        "DeletionPolicy Delete"
    )


def test_unnamed_or_deleted_resources_are_not_removal_violations(tmp_path: Path):
    service = service_template()
    service["Resources"]["Logs"]["DeletionPolicy"] = "Delete"
    service["Resources"]["Unnamed"] = {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"}
    assert violations_of(tmp_path, service=service) == []


# --- 7. Alarm topics -----------------------------------------------------------------------------------------------


def test_a_deny_only_topic_policy_shuts_cloudwatch_out(tmp_path: Path):
    core = core_template()
    core["Resources"]["TopicPolicy"]["Properties"]["PolicyDocument"]["Statement"] = [TLS_ONLY]
    [violation] = violations_of(tmp_path, core=core)
    assert violation == (
        "[alarm-topic] sdmw-core/Topic: CloudWatch cannot publish to this topic: its topic policy TopicPolicy "
        "replaces SNS's default policy and allows no sns:Publish by cloudwatch.amazonaws.com; 1 alarms in 1 "
        "stacks send to it"
    )


def test_a_deny_that_is_not_the_tls_one_is_not_allowed(tmp_path: Path):
    core = core_template()
    deny = copy.deepcopy(TLS_ONLY)
    deny["Condition"] = {"StringNotEquals": {"aws:SourceAccount": "111111111111"}}
    core["Resources"]["TopicPolicy"]["Properties"]["PolicyDocument"]["Statement"].append(deny)
    [violation] = violations_of(tmp_path, core=core)
    assert "denies sns:Publish to cloudwatch.amazonaws.com" in violation


def test_no_topic_policy_keeps_snss_default_and_passes(tmp_path: Path):
    core = core_template()
    del core["Resources"]["TopicPolicy"]
    assert violations_of(tmp_path, core=core) == []


def test_an_alarm_topic_no_template_creates(tmp_path: Path):
    core = core_template()
    core["Resources"]["Topic"]["Properties"]["TopicName"] = "sdmw-other"
    [violation] = violations_of(tmp_path, core=core)
    assert violation == (
        "[alarm-topic] sdmw-svc/Alarm: alarm action arn:aws-iso-f:sns:us-isof-south-1:123456789012:sdmw-alarms "
        "names a topic no template of the assembly creates (an assembly of some stacks only, cdk synth -c "
        "only=...: pass --partial)"
    )
    # An assembly of one service (-c only=...) does not have the core's topic.
    assert violations_of(tmp_path, core=core, partial=True) == []


# --- 8. Log retention ------------------------------------------------------------------------------------------


def test_a_log_group_without_retention(tmp_path: Path):
    service = service_template()
    del service["Resources"]["Logs"]["Properties"]["RetentionInDays"]
    [violation] = violations_of(tmp_path, service=service)
    assert violation == (
        "[log-retention] sdmw-svc/Logs: AWS::Logs::LogGroup has no RetentionInDays (its logs are kept forever)"
    )


def test_execution_logs_and_sagemaker_logs_nothing_keeps_in_check(tmp_path: Path):
    service = service_template()
    del service["Resources"]["ExecutionLogs"]
    statements = service["Resources"]["WorkerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    del statements[1]
    statements.append({"Effect": "Allow", "Action": "sagemaker:CreateEndpoint", "Resource": "*"})
    found = violations_of(tmp_path, service=service)
    assert found == [
        "[log-retention] sdmw-svc/Stage: AWS creates log group API-Gateway-Execution-Logs_abcdefghij/prod for it "
        "with no retention (kept forever), and no template declares it with RetentionInDays or grants "
        "logs:PutRetentionPolicy on it",
        "[log-retention] sdmw-svc/WorkerPolicy: AWS creates log group /aws/sagemaker/Endpoints/* for it with no "
        "retention (kept forever), and no template declares it with RetentionInDays or grants "
        "logs:PutRetentionPolicy on it",
        "[log-retention] sdmw-svc/WorkerPolicy: AWS creates log group /aws/sagemaker/TrainingJobs for it with no "
        "retention (kept forever), and no template declares it with RetentionInDays or grants "
        "logs:PutRetentionPolicy on it",
    ]


# --- The command ------------------------------------------------------------------------------------------------


def without_the_api(service: dict[str, Any]) -> dict[str, Any]:
    """The command checks against the real api_gateway.limits; without a proxy method there is nothing to check."""
    del service["Resources"]["Method"]
    return service


def test_the_command_prints_one_line_per_violation_and_fails(tmp_path: Path, capsys):
    service = without_the_api(service_template())
    service["Resources"]["Queue"]["Properties"]["VisibilityTimeout"] = 30
    service["Resources"]["Table"]["DeletionPolicy"] = "Retain"
    write_assembly(tmp_path, {"sdmw-core": core_template(), "sdmw-svc": service})
    assert limits.main([str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert [line.split(" ", 1)[0] for line in captured.out.splitlines()] == ["[sqs-visibility]", "[removal]"]
    assert "2 AWS deploy-time limit violation(s)" in captured.err


def test_the_command_prints_the_figures_when_all_pass(tmp_path: Path, capsys):
    write_assembly(tmp_path, {"sdmw-core": core_template(), "sdmw-svc": without_the_api(service_template())})
    assert limits.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AWS deploy-time limits: all pass in")
    assert "Stack sdmw-svc:" in out and "Lambda resource policy:" in out and "Prefix: 'sdmw'" in out


def test_the_command_needs_an_assembly(tmp_path: Path, capsys):
    assert limits.main([str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
