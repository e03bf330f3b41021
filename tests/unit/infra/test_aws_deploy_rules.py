"""What a real deployment needs and synth, cfn-lint and cdk-nag cannot see.

Each test here pins one rule that AWS applies at deploy time or later: the size
of a function's resource policy, what a teardown keeps and how the next deploy
adopts it, who may publish to the alarm topic, queue visibility against
function timeouts, the account-wide API Gateway logging role, log retention,
the checks ``make deploy`` runs first, and the image built in AWS.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from api_gateway.limits import TOO_LARGE_BODY
from infra.aws import codebuild_run, kept_secrets, preflight
from infra.aws.runtime_image import project_name
from infra.catalog import SERVICES
from infra.core import CORE
from service_kit.resources import LambdaFunction, Queue, ServiceResources
from service_kit.sagemaker import keep_logs_for_a_while
from tests.unit.infra.conftest import PREFIX, Synth, of_type, render, stack_name, synth

REPO = Path(__file__).resolve().parents[3]
#: CloudFormation's DeletionPolicy for RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE.
RETAIN_EXCEPT_ON_CREATE = "RetainExceptOnCreate"
NAMED_DATA = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::ECR::Repository": "RepositoryName",
}


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


# 1. One permission for the whole REST API


def test_the_edge_function_has_one_permission_for_the_whole_api(full_synth: Synth):
    template = full_synth.templates[stack_name("api-gateway")]
    [permission] = of_type(template, "AWS::Lambda::Permission").values()
    assert permission["Principal"] == "apigateway.amazonaws.com"
    # Every stage (test-invoke-stage included), every method, every path of this API.
    assert render(permission["SourceArn"]).endswith("/*/*/*")
    assert ":${ApiRestApi" in render(permission["SourceArn"])


# 2. What a teardown keeps, and the next deploy adopts


@pytest.mark.parametrize("retain_data", [True, False])
def test_named_data_is_kept_except_when_its_first_create_fails(retain_data: bool, tmp_path: Path, full_synth: Synth):
    templates = full_synth.templates if retain_data else synth(tmp_path, {"retain_data": "false"}).templates
    expected = RETAIN_EXCEPT_ON_CREATE if retain_data else "Delete"
    seen = 0
    for template in templates.values():
        for resource_type, name_property in NAMED_DATA.items():
            for logical_id, resource in resources_of_type(template, resource_type).items():
                assert name_property in resource["Properties"], f"{logical_id} is unnamed: never adopted, left behind"
                seen += 1
                assert resource.get("DeletionPolicy", "Delete") == expected, logical_id
                assert resource.get("UpdateReplacePolicy", "Delete") == ("Retain" if retain_data else "Delete")
    assert seen == 2 + 1 + len([s for s in SERVICES if s.table])  # buckets (data, access logs), repository, tables


def test_no_stack_holds_a_secret_clients_or_receivers_keep(full_synth: Synth):
    """A kept AWS::SecretsManager::Secret cannot be adopted by the next deploy (its primary identifier is
    read-only), and a deleted one loses its value: both live outside the stacks (infra.aws.kept_secrets)."""
    for template in full_synth.templates.values():
        assert not of_type(template, "AWS::SecretsManager::Secret")


def test_make_deploy_makes_the_secrets_once_and_keeps_their_values(mocked_aws):
    session = boto3.Session()
    client = session.client("secretsmanager")
    names = [f"{PREFIX}/api-key", f"{PREFIX}-{CORE.webhook_signing_key}"]
    assert kept_secrets.ensure_all(session, PREFIX) == dict.fromkeys(names, "created")
    values = {name: client.get_secret_value(SecretId=name)["SecretString"] for name in names}
    api_key = json.loads(values[names[0]])[kept_secrets.API_KEY_FIELD]
    assert len(api_key) == 40 and api_key.isalnum()  # an API Gateway key value as it is
    assert kept_secrets.ensure_all(session, PREFIX) == dict.fromkeys(names, "kept")
    client.delete_secret(SecretId=names[0], RecoveryWindowInDays=7)  # someone deleted it: its name is held
    assert kept_secrets.ensure_all(session, PREFIX)[names[0]] == "restored"
    assert {name: client.get_secret_value(SecretId=name)["SecretString"] for name in names} == values


def test_under_cdk_deploy_the_bucket_name_is_a_literal_that_can_be_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """--import-existing-resources adopts only resources whose names are static in the template."""
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    templates = synth(tmp_path).templates
    names = sorted(b["BucketName"] for b in of_type(templates[stack_name("core")], "AWS::S3::Bucket").values())
    assert names == [f"{PREFIX}-access-logs-123456789012-eu-west-1", f"{PREFIX}-{CORE.bucket}-123456789012-eu-west-1"]
    bucket = {"BucketName": names[1]}
    edge_env = next(
        f["Environment"]["Variables"]
        for f in of_type(templates[stack_name("api-gateway")], "AWS::Lambda::Function").values()
        if "SDMW_BUCKET" in f["Environment"]["Variables"]
    )
    assert edge_env["SDMW_BUCKET"] == bucket["BucketName"]


def test_make_deploy_adopts_what_a_teardown_kept():
    dry_run = subprocess.run(
        ["make", "-n", "deploy", "SERVICE=webhooks"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    deploy = next(line for line in dry_run.replace("\\\n", " ").splitlines() if "cdk deploy" in line)
    assert "--import-existing-resources" in deploy
    assert dry_run.index("infra.aws.preflight --prefix sdmw --service webhooks") < dry_run.index("cdk deploy")


# 3. Alarms reach someone


def alarm_topic(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return next(
        (logical_id, props)
        for logical_id, props in of_type(template, "AWS::SNS::Topic").items()
        if props["TopicName"] == f"{PREFIX}-{CORE.alarm_topic}"
    )


def test_cloudwatch_may_publish_to_the_alarm_topic(full_synth: Synth):
    core = full_synth.templates[stack_name("core")]
    topic_id, _ = alarm_topic(core)
    [policy] = [p for p in of_type(core, "AWS::SNS::TopicPolicy").values() if {"Ref": topic_id} in p["Topics"]]
    allows = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [s["Action"] for s in allows] == ["sns:Publish"]
    assert allows[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_the_deployer_can_name_an_address_for_the_alarms(tmp_path: Path, full_synth: Synth):
    assert not of_type(full_synth.templates[stack_name("core")], "AWS::SNS::Subscription")
    core = synth(tmp_path, {"alarm_email": "ops@example.com"}).templates[stack_name("core")]
    topic_id, _ = alarm_topic(core)
    [subscription] = of_type(core, "AWS::SNS::Subscription").values()
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "ops@example.com"
    assert subscription["TopicArn"] == {"Ref": topic_id}


# 4. Bodies too large for API Gateway get the edge's words


def test_a_body_api_gateway_refuses_gets_the_edges_413_sentence(full_synth: Synth):
    template = full_synth.templates[stack_name("api-gateway")]
    responses = of_type(template, "AWS::ApiGateway::GatewayResponse").values()
    [response] = [r for r in responses if r["ResponseType"] == "REQUEST_TOO_LARGE"]
    assert response["StatusCode"] == "413"
    assert json.loads(response["ResponseTemplates"]["application/json"]) == json.loads(TOO_LARGE_BODY)
    assert "$" not in response["ResponseTemplates"]["application/json"]


# 5. Queue visibility against the functions it feeds


def test_a_queue_must_stay_invisible_six_times_as_long_as_its_function_may_run():
    worker = (LambdaFunction("worker", "h", timeout_s=60),)
    with pytest.raises(ValueError, match="at least 6x worker's timeout"):
        ServiceResources("svc", queue=Queue("svc", visibility_timeout_s=120), functions=worker)
    ServiceResources("svc", queue=Queue("svc", visibility_timeout_s=360), functions=worker)


def test_every_deployed_queue_is_invisible_six_times_its_functions_timeout(full_synth: Synth):
    for template in full_synth.templates.values():
        queues = of_type(template, "AWS::SQS::Queue")
        functions = of_type(template, "AWS::Lambda::Function")
        for mapping in of_type(template, "AWS::Lambda::EventSourceMapping").values():
            queue = queues[mapping["EventSourceArn"]["Fn::GetAtt"][0]]
            function = functions[mapping["FunctionName"]["Ref"]]
            assert queue["VisibilityTimeout"] >= 6 * function["Timeout"], queue["QueueName"]


# 7. API Gateway's account-wide logging role outlives this deployment


def test_the_account_logging_role_is_kept_when_the_api_is_destroyed(full_synth: Synth):
    template = full_synth.templates[stack_name("api-gateway")]
    [(account_id, account)] = resources_of_type(template, "AWS::ApiGateway::Account").items()
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert account["DeletionPolicy"] == "Retain"
    role = template["Resources"][role_id]
    assert role["DeletionPolicy"] == RETAIN_EXCEPT_ON_CREATE  # kept, and named: adopted by the next deploy
    assert role["Properties"]["RoleName"] == f"{PREFIX}-apigateway-logs"


# 8. Log retention, and stale templates


def test_the_stage_execution_logs_have_a_retention_and_exist_before_the_stage(full_synth: Synth):
    template = full_synth.templates[stack_name("api-gateway")]
    groups = {
        logical_id: resource
        for logical_id, resource in resources_of_type(template, "AWS::Logs::LogGroup").items()
        if "API-Gateway-Execution-Logs_" in render(resource["Properties"].get("LogGroupName", ""))
    }
    [(group_id, group)] = groups.items()
    assert render(group["Properties"]["LogGroupName"]).endswith("/prod")
    assert group["Properties"]["RetentionInDays"] == 30
    [stage] = resources_of_type(template, "AWS::ApiGateway::Stage").values()
    assert group_id in stage["DependsOn"]


def test_sagemaker_log_groups_get_a_retention(mocked_aws):
    logs = boto3.client("logs")
    assert keep_logs_for_a_while(logs, "/aws/sagemaker/Endpoints/e1") is None
    assert keep_logs_for_a_while(logs, "/aws/sagemaker/Endpoints/e1") is None  # a repeat: already there
    [group] = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")["logGroups"]
    assert group["retentionInDays"] == 30


def test_synth_checks_only_the_templates_it_made():
    dry_run = subprocess.run(
        ["make", "-n", "synth", "SERVICE=webhooks"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    lines = dry_run.splitlines()
    wipe = next(i for i, line in enumerate(lines) if line.startswith("rm -rf build/cdk.out"))
    assert wipe < next(i for i, line in enumerate(lines) if "cdk synth" in line)
    assert any("infra.aws.limits build/cdk.out" in line for line in lines)


# 6. make deploy's preflight


def test_no_credentials_is_said_in_words(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(preflight.NotReady, match="no usable AWS credentials"):
        preflight.check(boto3.Session(region_name="us-east-1"), PREFIX, None)


def test_an_account_not_bootstrapped_is_told_to_bootstrap(mocked_aws):
    with pytest.raises(preflight.NotReady, match="make bootstrap"):
        preflight.check(boto3.Session(), PREFIX, None)


CORE_ONLY_TEMPLATE = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'


def test_a_service_deployed_before_the_core_is_told_to_deploy_the_core_first(mocked_aws):
    session = boto3.Session()
    session.client("ssm").put_parameter(Name=preflight.BOOTSTRAP_VERSION_PARAMETER, Value="30", Type="String")
    with pytest.raises(preflight.NotReady, match=r"sdmw-core is not deployed .*make deploy SERVICE=core"):
        preflight.check(session, PREFIX, "webhooks")
    assert preflight.check(session, PREFIX, "core")  # the core itself needs no core
    session.client("cloudformation").create_stack(StackName=stack_name("core"), TemplateBody=CORE_ONLY_TEMPLATE)
    assert preflight.check(session, PREFIX, "webhooks") == "123456789012"


# The image, built in AWS


@pytest.mark.parametrize("deploying_account", [False, True])
def test_the_codebuild_path_builds_the_deployed_context_into_the_core_repository(
    deploying_account: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    if deploying_account:  # as cdk deploy runs the app: cdk-nag's findings then name the account
        monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
        monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    core = synth(tmp_path, {"image_build": "codebuild"}).templates[stack_name("core")]
    assert not [a for a in core["Resources"].values() if a["Type"] == "AWS::ECR::Repository" and "Asset" in str(a)]
    [project] = of_type(core, "AWS::CodeBuild::Project").values()
    assert project["Name"] == project_name(PREFIX)
    assert project["Environment"]["PrivilegedMode"] is True
    assert project["Source"]["Type"] == "S3"
    variables = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    [parameter] = of_type(core, "AWS::SSM::Parameter").values()
    assert f":{variables['IMAGE_TAG']}" in json.dumps(parameter["Value"])
    assert "RuntimeRepository" in json.dumps(variables["REPOSITORY_URI"])


def _codebuild_world(session: Any, image_uri: str) -> None:
    session.client("ssm").put_parameter(
        Name=CORE.parameter(PREFIX, "runtime-image-uri"), Value=image_uri, Type="String"
    )
    session.client("ecr").create_repository(repositoryName=f"{PREFIX}-{CORE.runtime_repository}")
    role = session.client("iam").create_role(RoleName="build", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    session.client("codebuild").create_project(
        name=project_name(PREFIX),
        source={"type": "S3", "location": "bucket/context.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_LARGE",
        },
        serviceRole=role,
    )


MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
IMAGE = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{PREFIX}-{CORE.runtime_repository}:abc123"


def test_the_build_runs_and_is_waited_for(mocked_aws):
    session = boto3.Session()
    _codebuild_world(session, IMAGE)
    said: list[str] = []
    assert codebuild_run.build(PREFIX, session, say=said.append, sleep=lambda _: None) == IMAGE
    assert said[0].startswith(f"building {IMAGE} in CodeBuild") and said[-1] == f"pushed {IMAGE}"


def test_an_image_already_pushed_is_not_built_again(mocked_aws):
    session = boto3.Session()
    _codebuild_world(session, IMAGE)
    session.client("ecr").put_image(
        repositoryName=f"{PREFIX}-{CORE.runtime_repository}",
        imageManifest=json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE}),
        imageManifestMediaType=MANIFEST_MEDIA_TYPE,
        imageTag="abc123",
    )
    said: list[str] = []
    codebuild_run.build(PREFIX, session, say=said.append)
    assert said == [f"{IMAGE} is already in the repository; nothing to build"]


class FailingCodeBuildDouble:
    """A test double for boto3's codebuild client whose build fails (moto's builds always succeed)."""

    def start_build(self, projectName: str) -> dict:
        return {"build": {"id": f"{projectName}:1"}}

    def batch_get_builds(self, ids: list[str]) -> dict:
        return {"builds": [{"currentPhase": "COMPLETED", "buildStatus": "FAILED", "logs": {"deepLink": "https://logs"}}]}


def test_a_failed_build_fails_the_deploy_naming_its_logs(mocked_aws):
    session = boto3.Session()
    _codebuild_world(session, IMAGE)

    class Session:
        def client(self, name: str) -> Any:
            return FailingCodeBuildDouble() if name == "codebuild" else session.client(name)

    with pytest.raises(SystemExit, match="ended FAILED; its logs: https://logs"):
        codebuild_run.build(PREFIX, Session(), say=lambda _: None, sleep=lambda _: None)
