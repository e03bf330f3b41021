"""The CDK app's synthesized templates deploy, and what they deploy works: in moto's CloudFormation.

One emulator (``infra.aws.emulator.server``: moto in server mode with the gaps
of ``infra.aws.emulator.gaps`` bridged) for the module, and the app
synthesized as ``cdk deploy`` synthesizes it (the deploying account and region;
an image URI instead of a Docker image asset). The tests run in file order on
that one emulator, as one deployment's life; each can also run alone
(``deployed`` deploys what is missing).

- every resource type the templates use is modelled by moto or listed as a
  gap, and the emulator imports exactly the kept types AWS can import;
- a service stack created before the core fails and leaves nothing behind that
  would block the retry; a stack is refused when the bootstrap is too old;
- the core deploys, then each service stack alone, each reaching
  CREATE_COMPLETE with every resource of its template created (``Deployer``
  fails loudly otherwise), each function configured as its template says;
- every deployed function runs once with its deployed code and environment
  (``infra.aws.emulator.invoke``) and answers as it should: the edge through
  the deployed REST API's resource, method and API key; each queue worker with
  an SQS event built from a message the deployed rules (or topic
  subscription) delivered to its deployed queue, its effects checked (table
  rows, bucket, SageMaker, events on the bus);
- the core as ``make deploy IMAGE_BUILD=codebuild ALARM_EMAIL=...`` renders it
  deploys (under another prefix, beside the first);
- every stack deletes, keeping exactly what its template retains, and the app
  deploys again as ``make deploy`` does (``--import-existing-resources``),
  adopting what AWS can import, with its data.

Before the stacks, the emulator gets what ``make deploy`` does first: the
preflight (``infra.aws.preflight``), which also makes the deployment's secrets,
kept outside the stacks (``infra.aws.kept_secrets``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.aws import kept_secrets, preflight
from infra.aws.emulator import gaps
from infra.aws.emulator.deploy import QUALIFIER, Deployer, DeployError, Retained
from infra.aws.emulator.invoke import ApiFront, FunctionRunner, receive_matching
from infra.aws.emulator.server import running
from sdmw_contracts.events import ALL_EVENTS
from tests.unit.infra.conftest import Synth, synth

REGION = "us-east-1"
PREFIX = "sdmw"
CORE = f"{PREFIX}-core"
BOOTSTRAP_VERSION = f"/cdk-bootstrap/{QUALIFIER}/version"
CONTRACT_EXAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "examples"


@dataclass
class Emulated:
    url: str
    synthesized: Synth
    deployer: Deployer
    runner: FunctionRunner
    account: str
    #: A queue subscribed to every project event on the bus (made once the core is deployed).
    probe: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> list[str]:
        return [name for name in self.deployer.assembly.order() if name != CORE]

    def client(self, service: str) -> Any:
        return self.deployer.client(service)


def synth_as_cdk_deploy(outdir: Path, account: str, context: dict[str, Any]) -> Synth:
    """As ``cdk deploy`` synthesizes: it gives the app the deploying account and region (the stacks' names
    of kept data are then literal, which ``--import-existing-resources`` needs)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CDK_DEFAULT_ACCOUNT", account)
        env.setenv("CDK_DEFAULT_REGION", REGION)
        return synth(outdir, context)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulated]:
    workdir = tmp_path_factory.mktemp("aws-deployment")
    with running(workdir / "emulator.log") as url:
        account = boto3.client(
            "sts", endpoint_url=url, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
        ).get_caller_identity()["Account"]
        synthesized = synth_as_cdk_deploy(
            workdir / "cdk.out",
            account,
            {"runtime_image": f"{account}.dkr.ecr.{REGION}.amazonaws.com/{PREFIX}-sd-runtime:emulator"},
        )
        deployer = Deployer(synthesized.outdir, url, REGION)
        deployer.bootstrap()
        preflight.check(deployer, PREFIX, None)  # as make deploy runs it: the kept secrets are made here
        yield Emulated(url, synthesized, deployer, FunctionRunner(url, REGION, workdir / "lambda"), account)


@pytest.fixture
def deployed(emulated: Emulated) -> Emulated:
    """Every stack deployed (already, when the tests run in order; each deploy only verifies then)."""
    emulated.deployer.deploy_all()
    return emulated


#: The prefix of the app synthesized with the deploy options the main synth leaves off (it deploys beside it).
VARIANT = "sdmwcb"


@pytest.fixture(scope="module")
def variant(emulated: Emulated, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The app as ``make deploy IMAGE_BUILD=codebuild ALARM_EMAIL=...`` synthesizes it, under another prefix."""
    context = {"prefix": VARIANT, "image_build": "codebuild", "alarm_email": "ops@example.com"}
    return synth_as_cdk_deploy(tmp_path_factory.mktemp("variant") / "cdk.out", emulated.account, context)


# ---------------------------------------------------------------------------- templates


def test_every_resource_type_is_modelled_by_moto_or_a_listed_gap(emulated: Emulated, variant: Synth) -> None:
    from moto.cloudformation import parsing  # noqa: F401  (imports every moto model)
    from moto.core.common_models import CloudFormationModel

    moto_types = {
        model.cloudformation_type()
        for model in CloudFormationModel.__subclasses__()
        if not model.__module__.startswith("infra.")
    }
    used = {
        resource["Type"]
        for synthesized in (emulated.synthesized, variant)
        for template in synthesized.templates.values()
        for resource in template["Resources"].values()
    }
    lacking = used - moto_types
    added = {gap.what for gap in gaps.GAPS if gap.kind == gaps.ADDED}
    assert lacking <= added, f"resource types moto lacks and gaps.GAPS does not bridge: {sorted(lacking - added)}"
    assert not added & moto_types, f"moto models these now: drop their gap models? {sorted(added & moto_types)}"


def registry_schema(resource_type: str) -> dict[str, Any]:
    """CloudFormation's resource schema for a type, as cfn-lint (``make synth``) ships it."""
    from importlib import resources

    schemas = resources.files("cfnlint.data.schemas")
    index = json.loads((schemas / "providers" / f"{REGION}.json").read_text())
    return json.loads((schemas / "resources" / f"{index[resource_type]}.json").read_text())


def test_the_emulator_imports_exactly_the_kept_types_aws_can_import(emulated: Emulated) -> None:
    """ImportExistingResources needs the type's primary identifier to be its writable name property."""
    kept_types = {
        resource["Type"]
        for template in emulated.synthesized.templates.values()
        for resource in template["Resources"].values()
        if resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate")
    }
    for resource_type in kept_types | set(gaps.ADOPTABLE):
        schema = registry_schema(resource_type)
        identifier = schema["primaryIdentifier"]
        importable = (
            len(identifier) == 1
            and identifier[0] == f"/properties/{name_property(resource_type)}"
            and identifier[0] not in schema.get("readOnlyProperties", [])
        )
        assert importable == (resource_type in gaps.ADOPTABLE), (resource_type, identifier)


# ---------------------------------------------------------------------------- deploy


def test_a_service_stack_created_before_the_core_fails_and_leaves_nothing_behind(emulated: Emulated) -> None:
    """Each service stack needs the core (its bus, topics, parameter): created first, its creation fails and
    rolls back. A named resource the rollback kept would make the retry (after the core) fail with
    'already exists': RemovalPolicy RETAIN_ON_UPDATE_OR_DELETE (RetainExceptOnCreate) keeps on delete only."""
    deployer = emulated.deployer
    left: list[Retained] = []
    for name in emulated.services:
        with pytest.raises(DeployError) as failed:
            deployer.deploy(name)
        # It fails on what the core holds: the bus (its rules), or the core's SSM parameter.
        assert f"{PREFIX}-bus" in str(failed.value) or f"/{PREFIX}/core/" in str(failed.value), failed.value
        if deployer.status(name) is not None:
            left.extend(deployer.destroy(name))
    deployer.purge(left)  # whatever happens below, the real deployment starts clean
    templates = emulated.synthesized.templates
    blocking = [r for r in left if has_custom_name(templates[r.stack]["Resources"][r.logical_id])]
    assert not blocking, f"a failed creation kept named resources, a retry fails on them: {blocking}"


def test_a_stack_is_refused_when_the_account_is_not_bootstrapped_recently_enough(emulated: Emulated) -> None:
    """The templates' CheckBootstrapVersion rule, over the version ``cdk bootstrap`` wrote to SSM."""
    deployer = emulated.deployer
    deployer.client("ssm").put_parameter(Name=BOOTSTRAP_VERSION, Value="5", Type="String", Overwrite=True)
    try:
        with pytest.raises(DeployError, match="CDK bootstrap stack version 6 required"):
            deployer.deploy(CORE)
    finally:
        deployer.bootstrap()
    assert deployer.status(CORE) in (None, "REVIEW_IN_PROGRESS")  # nothing was created


def test_the_core_then_each_service_stack_alone_reaches_create_complete(emulated: Emulated) -> None:
    deployer = emulated.deployer
    core = deployer.deploy(CORE)
    assert core.status == "CREATE_COMPLETE"
    # Each service alone, in the reverse of the app's order: no service stack needs another.
    for name in reversed(emulated.services):
        deployed = deployer.deploy(name)  # verifies every resource of the template and every output
        assert deployed.status == "CREATE_COMPLETE", name
        template = emulated.synthesized.templates[name]
        assert len(deployed.resources) == len(template["Resources"]), name


def test_each_function_is_deployed_as_its_template_says(deployed: Emulated) -> None:
    emulated = deployed
    lambda_ = emulated.client("lambda")
    for template in emulated.synthesized.templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            properties = resource["Properties"]
            config = lambda_.get_function_configuration(FunctionName=properties["FunctionName"])
            assert config["Handler"] == properties["Handler"]
            assert config["Runtime"] == properties["Runtime"]
            assert config["Architectures"] == properties.get("Architectures", ["x86_64"])
            assert config["Timeout"] == properties["Timeout"]
            assert len(config.get("Layers", [])) == len(properties.get("Layers", []))
            assert set(config["Environment"]["Variables"]) == set(properties["Environment"]["Variables"])
            assert all(isinstance(v, str) and v for v in config["Environment"]["Variables"].values()), config


# ---------------------------------------------------------------------------- run what was deployed


def command(kind: str, id_field: str, **data: Any) -> tuple[dict[str, Any], str]:
    """A command as the edge publishes it: the contract's example with fresh ids (valid for its model)."""
    examples = sorted((CONTRACT_EXAMPLES / kind).glob("v*.json"))
    envelope = json.loads(examples[-1].read_text())
    entity_id = str(uuid.uuid4())
    envelope["metadata"].update(
        event_id=str(uuid.uuid4()), correlation_id=entity_id, occurred_at=datetime.now(UTC).isoformat()
    )
    envelope["data"].update({id_field: entity_id, **data})
    ALL_EVENTS[kind].model_validate(envelope["data"])
    return envelope, entity_id


def publish(emulated: Emulated, envelope: dict[str, Any], kind: str, source: str = f"{PREFIX}.api-gateway") -> None:
    subscribe_probe(emulated)
    entry = {"Source": source, "DetailType": kind, "Detail": json.dumps(envelope), "EventBusName": f"{PREFIX}-bus"}
    answer = emulated.client("events").put_events(Entries=[entry])
    assert answer["FailedEntryCount"] == 0, answer


def deliver(emulated: Emulated, function: str, matches: Callable[[dict[str, Any]], bool]) -> None:
    """The message the deployed routing put on the function's queue, delivered; no batch item may fail."""
    invocation, record = emulated.runner.deliver(function, matches)
    failures = invocation.result.get("batchItemFailures")
    assert failures == [], f"{function} failed {record['messageId']}:\n{invocation.output[-4000:]}"


def data_of(field_name: str, value: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: (body.get("detail") or {}).get("data", {}).get(field_name) == value


def subscribe_probe(emulated: Emulated) -> None:
    """A queue of our own with a rule for every project event on the bus, as any subscriber would."""
    if not emulated.probe:
        sqs, events = emulated.client("sqs"), emulated.client("events")
        url = sqs.create_queue(QueueName=f"{PREFIX}-emulator-probe")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name=f"{PREFIX}-emulator-probe",
            EventBusName=f"{PREFIX}-bus",
            EventPattern=json.dumps({"source": [{"prefix": f"{PREFIX}."}]}),
        )
        events.put_targets(Rule=f"{PREFIX}-emulator-probe", EventBusName=f"{PREFIX}-bus",
                           Targets=[{"Id": "probe", "Arn": arn}])
        emulated.probe.update(url=url, arn=arn)


def project_event(emulated: Emulated, kind: str, entity_id: str) -> dict[str, Any]:
    """A project event on the bus, received from the probe's queue."""
    message = receive_matching(
        emulated.client("sqs"),
        emulated.probe["url"],
        lambda body: body.get("detail-type") == kind and body["detail"]["data"].get("id") == entity_id,
        timeout_s=10,
    )
    return json.loads(message["Body"])


def snapshot_row(emulated: Emulated, table: str, entity_id: str) -> dict[str, Any]:
    items = emulated.client("dynamodb").scan(TableName=table)["Items"]
    rows = [i for i in items if i["pk"]["S"].endswith(f"#{entity_id}") and i["sk"]["S"] == "snapshot"]
    assert len(rows) == 1, f"{table} has no snapshot of {entity_id}"
    return rows[0]


def api_front(emulated: Emulated) -> tuple[ApiFront, str]:
    """The deployed REST API's prod stage, and the key clients send (read from the deployed secret)."""
    name = f"{PREFIX}-api-gateway"
    stack = emulated.deployer.verify(name)
    [rest_api_id] = stack.physical_ids("AWS::ApiGateway::RestApi").values()
    [stage] = stack.physical_ids("AWS::ApiGateway::Stage").values()
    [secret] = [value for key, value in stack.outputs.items() if key.startswith("ApiApiKeySecretName")]
    edge = emulated.client("lambda").get_function_configuration(FunctionName=f"{PREFIX}-api-gateway-edge")
    assert edge["Environment"]["Variables"]["API_KEYS_SECRET"] == secret
    secret_string = emulated.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    key = json.loads(secret_string)[kept_secrets.API_KEY_FIELD]  # the value API Gateway's key was deployed with
    return ApiFront(emulated.runner, rest_api_id, stage), key


def test_the_edge_answers_through_the_deployed_rest_api_and_its_key(deployed: Emulated) -> None:
    emulated = deployed
    front, key = api_front(emulated)
    _, method, _ = front.route("GET", "/checkpoints")
    assert method["apiKeyRequired"] is True
    _, preflight, _ = front.route("OPTIONS", "/checkpoints")
    assert preflight["apiKeyRequired"] is False and preflight["methodIntegration"]["type"] == "MOCK"

    listed = front.request("GET", "/checkpoints", headers={"x-api-key": key})
    assert listed.status == 200, listed.body
    assert listed.invocation is not None
    assert isinstance(listed.json()["checkpoints"], list)

    # API Gateway refuses a request without the key, or with another, before the edge sees it.
    for headers in ({}, {"x-api-key": "not-the-key-" + "x" * 20}):
        refused = front.request("GET", "/checkpoints", headers=headers)
        assert (refused.status, refused.json(), refused.invocation) == (403, {"message": "Forbidden"}, None)

    # And the edge checks again: the same event without the key, straight to the function.
    resource, _, _ = front.route("GET", "/checkpoints")
    event = front.proxy_event("GET", "/checkpoints", resource, {}, {}, None, None, None)
    answer = emulated.runner.invoke(f"{PREFIX}-api-gateway-edge", event).raise_for_error().result
    assert answer["statusCode"] == 401
    assert json.loads(answer["body"]) == {"message": "Missing x-api-key header"}


def test_a_checkpoint_request_flows_through_asset_registry_the_projector_and_the_edge(deployed: Emulated) -> None:
    emulated = deployed
    envelope, checkpoint_id = command("CheckpointCreationRequested", "checkpoint_id")
    publish(emulated, envelope, "CheckpointCreationRequested")
    deliver(emulated, f"{PREFIX}-asset-registry-worker", data_of("checkpoint_id", checkpoint_id))

    snapshot_row(emulated, f"{PREFIX}-asset-registry", checkpoint_id)
    bucket = f"{PREFIX}-bucket-{emulated.account}-{REGION}"
    uploads = emulated.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert any(checkpoint_id in upload["Key"] for upload in uploads), uploads
    changed = project_event(emulated, "CheckpointChanged", checkpoint_id)
    assert changed["source"] == f"{PREFIX}.asset-registry"

    # The deployed entity-changes rule put the fact on api-gateway's queue; the projector reads it in.
    deliver(emulated, f"{PREFIX}-api-gateway-projector", data_of("id", checkpoint_id))
    snapshot_row(emulated, f"{PREFIX}-api-gateway", checkpoint_id)
    front, key = api_front(emulated)
    listed = front.request("GET", "/checkpoints", headers={"x-api-key": key})
    assert listed.status == 200, listed.body
    assert checkpoint_id in {c["id"] for c in listed.json()["checkpoints"]}, listed.body


def test_an_endpoint_and_an_inference_on_it_flow_through_endpoint_manager_and_inference_dispatcher(
    deployed: Emulated,
) -> None:
    emulated = deployed
    endpoint = f"emulated-{uuid.uuid4().hex[:8]}"
    envelope, job_id = command("EndpointDeploymentRequested", "job_id", endpoint_name=endpoint)
    publish(emulated, envelope, "EndpointDeploymentRequested")
    deliver(emulated, f"{PREFIX}-endpoint-manager-worker", data_of("job_id", job_id))

    snapshot_row(emulated, f"{PREFIX}-endpoint-manager", job_id)
    sagemaker = emulated.client("sagemaker")
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    )
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    function = emulated.client("lambda").get_function_configuration(FunctionName=f"{PREFIX}-endpoint-manager-worker")
    assert model["PrimaryContainer"]["Image"] == function["Environment"]["Variables"]["SD_RUNTIME_IMAGE"]
    assert model["PrimaryContainer"]["Image"].endswith(f"/{PREFIX}-sd-runtime:emulator")  # the core's parameter
    assert model["ExecutionRoleArn"].endswith(f":role/{PREFIX}-sagemaker-execution")
    assert project_event(emulated, "EndpointDeploymentChanged", job_id)["source"] == f"{PREFIX}.endpoint-manager"

    envelope, inference_id = command("InferenceRequested", "job_id", endpoint_name=endpoint)
    publish(emulated, envelope, "InferenceRequested")
    deliver(emulated, f"{PREFIX}-inference-dispatcher-worker", data_of("job_id", inference_id))
    snapshot_row(emulated, f"{PREFIX}-inference-dispatcher", inference_id)
    bucket = f"{PREFIX}-bucket-{emulated.account}-{REGION}"
    emulated.client("s3").head_object(Bucket=bucket, Key=f"inference-input/{inference_id}.json")

    # SageMaker's answer comes by the core's topic and the deployed subscription to the dispatcher's queue.
    topic = f"arn:aws:sns:{REGION}:{emulated.account}:{PREFIX}-async-error"
    emulated.client("sns").publish(
        TopicArn=topic,
        Message=json.dumps(
            {
                "awsRegion": REGION,
                "eventTime": datetime.now(UTC).isoformat(),
                "receivedTime": datetime.now(UTC).isoformat(),
                "invocationStatus": "Failed",
                "failureReason": "ClientError: the emulator runs no model",
                "requestParameters": {
                    "endpointName": endpoint,
                    "inputLocation": f"s3://{bucket}/inference-input/{inference_id}.json",
                },
                "inferenceId": inference_id,
                "eventVersion": "1.0",
                "eventSource": "aws:sagemaker",
                "eventName": "InferenceResult",
            }
        ),
    )
    deliver(
        emulated,
        f"{PREFIX}-inference-dispatcher-worker",
        lambda body: body.get("TopicArn") == topic and json.loads(body["Message"]).get("inferenceId") == inference_id,
    )
    failed = project_event(emulated, "InferenceJobChanged", inference_id)
    assert failed["detail"]["data"]["status"] == "failed", failed


def test_a_model_request_flows_through_training_manager(deployed: Emulated) -> None:
    emulated = deployed
    envelope, model_id = command("ModelCreationRequested", "model_id")
    publish(emulated, envelope, "ModelCreationRequested")
    deliver(emulated, f"{PREFIX}-training-manager-worker", data_of("model_id", model_id))

    snapshot_row(emulated, f"{PREFIX}-training-manager", model_id)
    bucket = f"{PREFIX}-bucket-{emulated.account}-{REGION}"
    uploads = emulated.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert any(model_id in upload["Key"] for upload in uploads), uploads
    assert project_event(emulated, "ModelChanged", model_id)["source"] == f"{PREFIX}.training-manager"


def test_a_webhook_subscription_flows_through_webhooks(deployed: Emulated) -> None:
    emulated = deployed
    envelope, subscription_id = command("WebhookSubscriptionRequested", "subscription_id")
    publish(emulated, envelope, "WebhookSubscriptionRequested")
    deliver(emulated, f"{PREFIX}-webhooks-worker", data_of("subscription_id", subscription_id))

    snapshot_row(emulated, f"{PREFIX}-webhooks", subscription_id)
    changed = project_event(emulated, "WebhookSubscriptionChanged", subscription_id)
    assert changed["detail"]["data"]["status"] == "active", changed


def test_every_deployed_function_was_run(deployed: Emulated) -> None:
    emulated = deployed
    deployed = {
        physical
        for name in emulated.deployer.assembly.order()
        for physical in emulated.deployer.verify(name).physical_ids("AWS::Lambda::Function").values()
    }
    run = {invocation.function for invocation in emulated.runner.invocations}
    assert deployed - run == set(), "deployed functions no test ran"


def test_the_core_with_its_image_built_by_codebuild_and_alarms_by_email_deploys(
    emulated: Emulated, variant: Synth
) -> None:
    deployer = Deployer(variant.outdir, emulated.url, REGION)
    name = f"{VARIANT}-core"
    core = deployer.deploy(name)
    assert core.status == "CREATE_COMPLETE"

    [project_name] = core.physical_ids("AWS::CodeBuild::Project").values()
    [project] = emulated.client("codebuild").batch_get_projects(names=[project_name])["projects"]
    bucket, _, key = project["source"]["location"].partition("/")
    emulated.client("s3").head_object(Bucket=bucket, Key=key)  # the build context, published as a file asset
    variables = {v["name"]: v["value"] for v in project["environment"]["environmentVariables"]}
    image = emulated.client("ssm").get_parameter(Name=f"/{VARIANT}/core/runtime-image-uri")["Parameter"]["Value"]
    assert image == f"{variables['REPOSITORY_URI']}:{variables['IMAGE_TAG']}"  # what SageMaker will pull
    assert project["environment"]["privilegedMode"] is True

    alarms = f"arn:aws:sns:{REGION}:{emulated.account}:{VARIANT}-alarms"
    subscriptions = emulated.client("sns").list_subscriptions_by_topic(TopicArn=alarms)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@example.com")]

    deployer.purge(deployer.destroy(name))


# ---------------------------------------------------------------------------- delete and deploy again


def test_everything_deletes_keeping_what_is_retained_and_deploys_again_adopting_it(deployed: Emulated) -> None:
    """make destroy, then make deploy (``--import-existing-resources``): what a teardown keeps stays, and the
    next deploy adopts what AWS can import, with what it holds (README: "Tearing down and deploying again")."""
    emulated = deployed
    deployer = emulated.deployer
    front, key_before = api_front(emulated)
    listed_before = front.request("GET", "/checkpoints", headers={"x-api-key": key_before}).json()["checkpoints"]
    if emulated.probe:
        events = emulated.client("events")
        events.remove_targets(Rule=f"{PREFIX}-emulator-probe", EventBusName=f"{PREFIX}-bus", Ids=["probe"])
        events.delete_rule(Name=f"{PREFIX}-emulator-probe", EventBusName=f"{PREFIX}-bus")
        emulated.client("sqs").delete_queue(QueueUrl=emulated.probe["url"])
        emulated.probe.clear()

    retained = deployer.destroy_all()
    for name in deployer.assembly.order():
        assert deployer.status(name) is None, name
    expected = {
        (name, logical_id)
        for name, template in emulated.synthesized.templates.items()
        for logical_id, resource in template["Resources"].items()
        if resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate")
    }
    assert {(r.stack, r.logical_id) for r in retained} == expected
    assert all(deployer.exists(r) for r in retained), "a retained resource was deleted"

    # make deploy: --import-existing-resources adopts everything a teardown kept with a name. A kept resource
    # AWS cannot import would fail the create on its name (the secrets did, before they moved out of the stacks).
    templates = emulated.synthesized.templates
    named = [r for r in retained if has_custom_name(templates[r.stack]["Resources"][r.logical_id])]
    assert not [r for r in named if r.resource_type not in gaps.ADOPTABLE], "kept, named, and not importable"
    unnamed = [r for r in retained if r not in named]
    assert {r.resource_type for r in unnamed} <= {"AWS::ApiGateway::Account"}, "kept, unnamed: left behind"

    preflight.check(deployer, PREFIX, None)
    again = deployer.deploy_all()
    assert {name: stack.status for name, stack in again.items()} == dict.fromkeys(again, "CREATE_COMPLETE")
    imported = {(name, logical_id) for name, stack in again.items() for logical_id in stack.imported}
    assert imported == {(r.stack, r.logical_id) for r in named}, "every kept named resource is adopted"

    # What the adopted tables held is there (the read model the edge lists), and the kept key still opens it.
    front, key_after = api_front(emulated)
    assert key_after == key_before
    listed_after = front.request("GET", "/checkpoints", headers={"x-api-key": key_after})
    assert listed_after.status == 200, listed_after.body
    assert listed_after.json()["checkpoints"] == listed_before


def name_property(resource_type: str) -> str:
    """The property that names a resource of the type (moto's models, and the gap models, know it)."""
    from moto.core.common_models import CloudFormationModel

    names = {m.cloudformation_type(): m.cloudformation_name_type() for m in CloudFormationModel.__subclasses__()}
    return names.get(resource_type) or ""


def has_custom_name(resource: dict[str, Any]) -> bool:
    """Whether the resource has a fixed (literal) name: one a retry collides with, and an import can adopt."""
    return isinstance(resource.get("Properties", {}).get(name_property(resource["Type"])), str)
