"""What moto's CloudFormation lacks for the CDK app's templates, and how the emulator bridges each gap.

moto (5.2) skips a resource type it has no model for with a warning, and its
stack still reaches CREATE_COMPLETE: a deploy would look fine while creating
nothing. Each missing type the templates use gets a model here that creates the
resource through that service's own moto backend, from the template's
properties as moto resolved them; CloudFormation behaviour moto lacks is
patched in. ``install()`` (called by ``infra.aws.emulator.server`` before the
first stack is parsed) applies it all and checks each model is the one moto
will use.

``GAPS`` below is the one list of them. ``tests/integration/test_aws_deployment.py``
checks that every resource type the templates use is either modelled by moto
or listed here, so a new unsupported type fails until it is bridged.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

# moto.cloudformation.parsing imports every service's models: importing it first makes the models
# below later subclasses of CloudFormationModel than moto's own, so they win in its type -> model map.
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException, ValidationError
from moto.core.common_models import CloudFormationModel

ADDED = "missing type"
REPLACED = "broken model"
PATCHED = "patched model"
BEHAVIOUR = "CloudFormation behaviour"
NOT_EMULATED = "not emulated"


@dataclass(frozen=True)
class Gap:
    #: A resource type, or the CloudFormation behaviour concerned.
    what: str
    kind: str
    #: What moto does (or does not), and what the emulator does instead.
    bridge: str


#: Every gap between moto 5.2's CloudFormation and what these templates need, in one place.
GAPS: tuple[Gap, ...] = (
    # --- resource types moto has no model for: each gets one here, made through the service's moto backend
    Gap("AWS::ApiGateway::Account", ADDED,
        "sets the account's CloudWatch role (apigateway UpdateAccount); deleting it changes nothing, an "
        "account setting outlives the stack"),
    Gap("AWS::ApiGateway::ApiKey", ADDED,
        "CreateApiKey with the template's value, its {{resolve:secretsmanager:...}} dynamic reference "
        "resolved first (see 'dynamic references'); DeleteApiKey"),
    Gap("AWS::ApiGateway::GatewayResponse", ADDED, "PutGatewayResponse on the REST API; DeleteGatewayResponse"),
    Gap("AWS::ApiGateway::Stage", ADDED,
        "CreateStage on the deployment (variables, tracing, tags), then its MethodSettings (logging level, "
        "metrics, data trace, throttling) and AccessLogSetting as UpdateStage patch operations; DeleteStage"),
    Gap("AWS::ApiGateway::UsagePlan", ADDED,
        "CreateUsagePlan with its API stages (each checked to exist, as AWS does), throttle and quota; "
        "DeleteUsagePlan"),
    Gap("AWS::ApiGateway::UsagePlanKey", ADDED, "CreateUsagePlanKey (the key must exist); DeleteUsagePlanKey"),
    Gap("AWS::CDK::Metadata", ADDED, "nothing to create: CloudFormation keeps it as metadata only; so does this"),
    Gap("AWS::CloudWatch::Alarm", ADDED,
        "PutMetricAlarm with every property (metric or metric-math Metrics, dimensions, actions); "
        "DeleteAlarms. Alarms never change state in the emulator: nothing evaluates metrics"),
    Gap("AWS::CodeBuild::Project", ADDED,
        "CreateProject (properties in the API's casing); DeleteProject. Builds are not run"),
    Gap("AWS::S3::BucketPolicy", ADDED, "PutBucketPolicy; DeleteBucketPolicy (see 'bucket policy conditions')"),
    Gap("AWS::SNS::Subscription", ADDED,
        "Subscribe (the topic must exist: a service stack deployed before the core fails, as on AWS), then "
        "RawMessageDelivery, FilterPolicy, FilterPolicyScope, RedrivePolicy, DeliveryPolicy as subscription "
        "attributes; Unsubscribe. moto delivers to SQS endpoints for real"),
    Gap("AWS::SNS::TopicPolicy", ADDED,
        "SetTopicAttributes Policy on each topic; on delete the topic gets back the policy it had"),
    Gap("AWS::SQS::QueuePolicy", ADDED, "SetQueueAttributes Policy on each queue; on delete the policy is removed"),
    Gap("AWS::SecretsManager::Secret", ADDED,
        "CreateSecret with SecretString, or a value made as GenerateSecretString describes (moto's "
        "GetRandomPassword, the key/template form included); Ref is the ARN; deleted without a recovery "
        "window, as CloudFormation deletes secrets"),
    # --- moto models that fail on these templates: replaced
    Gap("AWS::ApiGateway::Method", REPLACED,
        "moto's model reads Integration.IntegrationHttpMethod and Integration.Uri unconditionally, so a MOCK "
        "integration (every CORS preflight) fails with KeyError, and it drops method and integration "
        "responses, request parameters and templates; this one puts the method, its integration, "
        "integration responses and method responses as the API does, and deletes the method"),
    # --- moto models with a bug these templates hit: patched where moto's model is otherwise right
    Gap("AWS::SSM::Parameter", PATCHED,
        "moto hands the Tags property (a key-value map for this type, unlike most) to PutParameter, which "
        "takes a list of Key/Value pairs: TypeError. The emulator converts the map to the list first"),
    Gap("AWS::Lambda::Function", PATCHED,
        "moto's model passes CreateFunction only Code, Handler, Role, Runtime, Description, MemorySize, "
        "Timeout, VpcConfig, Environment and ReservedConcurrentExecutions: Layers, Architectures, "
        "TracingConfig, LoggingConfig, EphemeralStorage, DeadLetterConfig, ImageConfig, PackageType, "
        "KmsKeyArn and Tags are dropped (an arm64 function with a layer is deployed x86_64 without it). "
        "The emulator passes every property CreateFunction takes (the layers must exist)"),
    # --- CloudFormation behaviour
    Gap("DeletionPolicy: RetainExceptOnCreate", BEHAVIOUR,
        "moto keeps only 'Retain' on delete. The emulator keeps RetainExceptOnCreate resources on stack "
        "delete, as AWS does, and deletes them when the stack's creation rolls back"),
    Gap("change sets of type CREATE", BEHAVIOUR,
        "moto executes one as an update of an empty stack: no dependency order, no rollback, an error is "
        "ExecuteChangeSet's answer, and a template moto cannot load is only found then. The emulator "
        "validates the template (parameters, rules) at CreateChangeSet (a failure makes the change set "
        "FAILED with the reason, as AWS does) and executes it as CreateStack does, rollback included"),
    Gap("ImportExistingResources", BEHAVIOUR,
        "moto ignores it (so 'cdk deploy --import-existing-resources', which make deploy runs, would fail "
        "with 'already exists' over data a teardown kept). The emulator imports each resource of a CREATE "
        "change set as AWS documents it: a static custom name in the template (no Ref or other function), "
        "DeletionPolicy Retain or RetainExceptOnCreate, an existing resource of that name in no other "
        "stack, and a type whose registry schema has that writable name as its primary identifier (the "
        "types in ADOPTABLE). It is adopted as it is (IMPORT_COMPLETE event), not created; a rollback keeps "
        "it. Not importable, as on AWS: SecretsManager::Secret (primary identifier Id, read-only), "
        "SQS::Queue (QueueUrl, read-only): such a kept resource makes the create fail with 'already exists'"),
    Gap("rollback of a failed creation", BEHAVIOUR,
        "moto answers CreateStack with the resource's error and leaves the stack CREATE_IN_PROGRESS with what "
        "it had made. The emulator records the resource's CREATE_FAILED event (logical id, type, reason), "
        "deletes what was created (keeping Retain) and ends in ROLLBACK_COMPLETE, or stops at CREATE_FAILED "
        "when rollback is disabled. Likewise a failed DeleteStack: moto answers with the error and forgets "
        "the stack; the emulator ends it in DELETE_FAILED with the reason in its events"),
    Gap("lazy resource map", BEHAVIOUR,
        "moto creates a stack's resources lazily, on first reference, and keeps doing so once the stack "
        "exists: describing the resources or outputs of a stack whose creation rolled back re-creates what "
        "the rollback deleted (and may fail again). The emulator seals the map when creation ends: a "
        "resource that does not exist stays absent (not listed, and no output refers to it)"),
    Gap("Rules (CheckBootstrapVersion)", BEHAVIOUR,
        "moto ignores a template's Rules. The emulator evaluates each rule's assertions (Fn::Not, Fn::And, "
        "Fn::Or, Fn::Equals, Fn::Contains, Fn::EachMemberEquals, Fn::EachMemberIn over parameters) and "
        "refuses the stack with the assertion's description, as CreateStack does"),
    Gap("SSM parameter types", BEHAVIOUR,
        "a parameter of type AWS::SSM::Parameter::Value<...> naming a parameter that does not exist makes "
        "moto answer CreateStack with an internal error (500). The emulator answers as CloudFormation does: "
        "ValidationError 'Unable to fetch parameters [...] from parameter store for this account.'"),
    Gap("dynamic references", BEHAVIOUR,
        "moto passes '{{resolve:...}}' through as text. The emulator resolves secretsmanager (SecretString, "
        "JSON key, version stage or id), ssm and ssm-secure references in every resource's properties "
        "before its model sees them"),
    Gap("unresolved intrinsic functions", BEHAVIOUR,
        "moto logs and leaves a Fn::GetAtt in place when a model lacks the attribute, and the property "
        "reaches the resource as a dict. The emulator fails that resource instead, naming the function"),
    Gap("delete of a REST API and of a layer version", BEHAVIOUR,
        "moto's RestApi (and Resource, Method, Deployment) and LayerVersion models cannot be deleted: they "
        "would outlive their stack and a redeploy would make a second REST API of the same name. The "
        "emulator deletes the REST API (with everything under it) and the layer version"),
    Gap("physical ids", BEHAVIOUR,
        "moto gives ApiGateway::Deployment, Events::EventBus, Lambda::LayerVersion and Lambda::Permission no "
        "physical id (a Ref to one yields moto's object, not a string); the emulator gives the deployment id, "
        "the bus's name, the layer version's ARN and '<function ARN>|<resource name>', as Ref does on AWS"),
    Gap("bucket policy conditions", BEHAVIOUR,
        "moto enforces a bucket policy on object requests but ignores every statement's Condition, so the "
        "TLS-only statement (Deny s3:* when aws:SecureTransport is false) denies every object request (403). "
        "The emulator evaluates conditions on aws:SecureTransport as true (it stands in for AWS's HTTPS "
        "endpoints, though it answers plain HTTP); a statement with any other condition is left out of the "
        "evaluation (IAM conditions are not emulated)"),
    Gap("SQS event source mappings", BEHAVIOUR,
        "moto runs a mapped function in Docker as each message is sent. The emulator has no Lambda runtime: "
        "messages stay in the queue, and infra.aws.emulator.invoke delivers them as Lambda's poller would"),
    # --- not emulated at all (documented, so no test reads more into a deploy than it proves)
    Gap("IAM", NOT_EMULATED,
        "roles, policies and resource policies are created and stored, never evaluated (invoke.py runs a "
        "function with dummy credentials, not its role): a deploy proves they are well-formed and wired, not "
        "that they grant enough, or too much"),
    Gap("Lambda runtime", NOT_EMULATED,
        "no function runs inside the emulator; invoke.py runs the deployed code on the local Python (the "
        "venv's version, not necessarily the python3.12 the functions are deployed with) with the local "
        "venv's packages (the layer's Linux arm64 python3.12 wheels cannot be imported here)"),
    Gap("creation order and resource events", NOT_EMULATED,
        "moto creates resources one by one in template order (references and DependsOn first), not in "
        "AWS's parallel dependency graph, so a failing deploy may stop at another resource than on AWS; "
        "resource events are only the emulator's CREATE_FAILED and IMPORT_COMPLETE"),
    Gap("SQS queue names", NOT_EMULATED,
        "AWS refuses a deleted queue's name for 60 seconds; moto reuses it at once, so a redeploy right "
        "after a teardown succeeds here and must wait a minute on AWS"),
    Gap("API Gateway execute-api, X-Ray, CloudWatch metrics", NOT_EMULATED,
        "no request goes through the deployed REST API (invoke.py builds the event API Gateway would send, "
        "for a resource and method the deployed API has), no trace is recorded, no alarm fires"),
)

#: Resource types this module models (added or replaced).
MODELLED_TYPES = frozenset(gap.what for gap in GAPS if gap.kind in (ADDED, REPLACED))


# ----------------------------------------------------------------------------- helpers


def _backend(service: str, account_id: str, region_name: str) -> Any:
    from moto.backends import get_backend

    backends = get_backend(service)  # type: ignore[call-overload]
    if service in ("s3",):
        from moto.utilities.utils import get_partition

        return backends[account_id][get_partition(region_name)]
    return backends[account_id][region_name]


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


#: Property names whose API spelling is not CloudFormation's with a lowercase first letter.
_API_NAMES = {"BuildSpec": "buildspec"}


def _camel(value: Any) -> Any:
    """CloudFormation's property names (``SourceVersion``) as the APIs spell them (``sourceVersion``)."""
    if isinstance(value, dict):
        return {_API_NAMES.get(key, key[:1].lower() + key[1:]): _camel(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_camel(item) for item in value]
    return value


def _apigateway_gone(delete: Callable[[], Any]) -> None:
    """Delete a part of a REST API; gone already when the REST API went first (moto deletes in no order)."""
    from moto.apigateway.exceptions import NotFoundException

    with contextlib.suppress(NotFoundException, KeyError):
        delete()


def _tags_dict(tags: Any) -> dict[str, str]:
    if isinstance(tags, dict):
        return dict(tags)
    return {tag["Key"]: tag["Value"] for tag in tags or []}


class _Gap:
    """What each gap model shares: the interface moto's CloudFormation calls on a model and its instances.

    A gap model subclasses this and ``CloudFormationModel`` directly: moto's type -> model map is built
    from ``CloudFormationModel.__subclasses__()``, direct subclasses only.
    """

    TYPE: ClassVar[str]
    #: The property that names the resource (moto generates a name when the template gives none).
    NAME_PROPERTY: ClassVar[str] = ""
    #: Fn::GetAtt attribute -> instance attribute.
    ATTRIBUTES: ClassVar[dict[str, str]] = {}

    physical_id: str

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.ATTRIBUTES:
            raise UnformattedGetAttTemplateException()
        return getattr(self, self.ATTRIBUTES[attribute_name])

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    def is_created(self) -> bool:
        return True

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> _Gap:
        instance = cls()
        instance.account_id = account_id
        instance.region_name = region_name
        instance.properties = cloudformation_json.get("Properties", {})
        instance.create(resource_name, instance.properties)
        return instance

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: _Gap,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> _Gap:
        """An update replaces the resource (good enough for the emulator: every update is a replacement)."""
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        raise NotImplementedError("gap models are deleted through their instance")

    def backend(self, service: str) -> Any:
        return _backend(service, self.account_id, self.region_name)

    # Each model implements these two.
    def create(self, name: str, properties: dict[str, Any]) -> None:
        raise NotImplementedError

    def delete(self, account_id: str, region_name: str) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------------- API Gateway


class ApiGatewayAccount(_Gap, CloudFormationModel):
    TYPE = "AWS::ApiGateway::Account"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        role = properties.get("CloudWatchRoleArn")
        if role:
            self.backend("apigateway").update_account(
                [{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]
            )
        self.physical_id = name

    def delete(self, account_id: str, region_name: str) -> None:
        pass


class ApiGatewayApiKey(_Gap, CloudFormationModel):
    TYPE = "AWS::ApiGateway::ApiKey"
    NAME_PROPERTY = "Name"
    ATTRIBUTES = {"APIKeyId": "physical_id"}

    def create(self, name: str, properties: dict[str, Any]) -> None:
        payload: dict[str, Any] = {
            "name": name,
            "description": properties.get("Description"),
            "enabled": _bool(properties.get("Enabled", False)),
            "stageKeys": [f"{k['RestApiId']}/{k['StageName']}" for k in properties.get("StageKeys", [])],
            "customerId": properties.get("CustomerId"),
            "tags": _tags_dict(properties.get("Tags")) or None,
        }
        if properties.get("Value"):
            payload["value"] = properties["Value"]
        self.physical_id = self.backend("apigateway").create_api_key(payload).id

    def delete(self, account_id: str, region_name: str) -> None:
        _apigateway_gone(lambda: self.backend("apigateway").delete_api_key(self.physical_id))


class ApiGatewayGatewayResponse(_Gap, CloudFormationModel):
    TYPE = "AWS::ApiGateway::GatewayResponse"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        self.rest_api_id = properties["RestApiId"]
        self.response_type = properties["ResponseType"]
        self.backend("apigateway").put_gateway_response(
            rest_api_id=self.rest_api_id,
            response_type=self.response_type,
            status_code=properties.get("StatusCode"),
            response_parameters=properties.get("ResponseParameters"),
            response_templates=properties.get("ResponseTemplates"),
        )
        self.physical_id = name

    def delete(self, account_id: str, region_name: str) -> None:
        _apigateway_gone(lambda: self.backend("apigateway").delete_gateway_response(self.rest_api_id,
                                                                                     self.response_type))


def _stage_path(resource_path: str, http_method: str) -> str:
    """A MethodSettings entry's key in UpdateStage patch paths: ``/~1items/GET``, or ``/*/*`` for all."""
    escaped = resource_path.replace("~", "~0").replace("/", "~1") if resource_path != "/*" else "*"
    return f"/{escaped}/{http_method}"


#: MethodSettings property -> the UpdateStage patch path under ``/<resource>/<method>``.
METHOD_SETTINGS = {
    "LoggingLevel": "logging/loglevel",
    "DataTraceEnabled": "logging/dataTrace",
    "MetricsEnabled": "metrics/enabled",
    "ThrottlingRateLimit": "throttling/rateLimit",
    "ThrottlingBurstLimit": "throttling/burstLimit",
    "CachingEnabled": "caching/enabled",
    "CacheTtlInSeconds": "caching/ttlInSeconds",
    "CacheDataEncrypted": "caching/dataEncrypted",
}


class ApiGatewayStage(_Gap, CloudFormationModel):
    TYPE = "AWS::ApiGateway::Stage"
    NAME_PROPERTY = "StageName"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        apigateway = self.backend("apigateway")
        self.rest_api_id = properties["RestApiId"]
        self.physical_id = name
        apigateway.create_stage(
            function_id=self.rest_api_id,
            stage_name=name,
            deploymentId=properties["DeploymentId"],
            variables=properties.get("Variables"),
            description=properties.get("Description", ""),
            cacheClusterEnabled=properties.get("CacheClusterEnabled"),
            cacheClusterSize=properties.get("CacheClusterSize"),
            tags=_tags_dict(properties.get("Tags")) or None,
            tracing_enabled=_bool(properties.get("TracingEnabled", False)),
        )
        operations = []
        for setting in properties.get("MethodSettings", []):
            path = _stage_path(setting.get("ResourcePath", "/*"), setting.get("HttpMethod", "*"))
            for prop, patch in METHOD_SETTINGS.items():
                if prop in setting:
                    value = setting[prop]
                    operations.append({"op": "replace", "path": f"{path}/{patch}", "value": str(value).lower()
                                       if isinstance(value, bool) else str(value)})
        access_log = properties.get("AccessLogSetting")
        if access_log:
            for prop, patch in (("DestinationArn", "destinationArn"), ("Format", "format")):
                if prop in access_log:
                    operations.append({"op": "replace", "path": f"/accessLogSettings/{patch}",
                                       "value": access_log[prop]})
        if operations:
            apigateway.update_stage(self.rest_api_id, name, operations)

    def delete(self, account_id: str, region_name: str) -> None:
        _apigateway_gone(lambda: self.backend("apigateway").delete_stage(self.rest_api_id, self.physical_id))


class ApiGatewayUsagePlan(_Gap, CloudFormationModel):
    TYPE = "AWS::ApiGateway::UsagePlan"
    NAME_PROPERTY = "UsagePlanName"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        apigateway = self.backend("apigateway")
        stages = []
        for stage in properties.get("ApiStages", []):
            # AWS refuses a plan on a stage that does not exist; moto would accept it.
            if apigateway.get_stage(stage["ApiId"], stage["Stage"]) is None:
                raise ValidationError(message=f"API stage {stage['ApiId']}/{stage['Stage']} does not exist")
            stages.append(_camel(stage))
        payload = {
            "name": name,
            "description": properties.get("Description"),
            "apiStages": stages,
            "throttle": _camel(properties.get("Throttle")),
            "quota": _camel(properties.get("Quota")),
            "tags": _tags_dict(properties.get("Tags")) or None,
        }
        self.physical_id = apigateway.create_usage_plan(payload).id

    def delete(self, account_id: str, region_name: str) -> None:
        _apigateway_gone(lambda: self.backend("apigateway").delete_usage_plan(self.physical_id))


class ApiGatewayUsagePlanKey(_Gap, CloudFormationModel):
    TYPE = "AWS::ApiGateway::UsagePlanKey"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        self.usage_plan_id = properties["UsagePlanId"]
        self.key_id = properties["KeyId"]
        self.backend("apigateway").create_usage_plan_key(
            self.usage_plan_id, {"keyId": self.key_id, "keyType": properties["KeyType"]}
        )
        self.physical_id = self.key_id

    def delete(self, account_id: str, region_name: str) -> None:
        _apigateway_gone(lambda: self.backend("apigateway").delete_usage_plan_key(self.usage_plan_id, self.key_id))


class ApiGatewayMethod(_Gap, CloudFormationModel):
    TYPE = "AWS::ApiGateway::Method"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        apigateway = self.backend("apigateway")
        self.rest_api_id = properties["RestApiId"]
        self.resource_id = properties["ResourceId"]
        self.http_method = properties["HttpMethod"]
        apigateway.put_method(
            function_id=self.rest_api_id,
            resource_id=self.resource_id,
            method_type=self.http_method,
            authorization_type=properties.get("AuthorizationType", "NONE"),
            api_key_required=_bool(properties.get("ApiKeyRequired", False)),
            request_parameters=properties.get("RequestParameters"),
            request_models=properties.get("RequestModels"),
            operation_name=properties.get("OperationName"),
            authorizer_id=properties.get("AuthorizerId"),
            authorization_scopes=properties.get("AuthorizationScopes"),
            request_validator_id=properties.get("RequestValidatorId"),
        )
        integration = properties.get("Integration")
        if integration:
            apigateway.put_integration(
                function_id=self.rest_api_id,
                resource_id=self.resource_id,
                method_type=self.http_method,
                integration_type=integration["Type"],
                uri=integration.get("Uri"),
                integration_method=integration.get("IntegrationHttpMethod"),
                credentials=integration.get("Credentials"),
                request_templates=integration.get("RequestTemplates"),
                passthrough_behavior=integration.get("PassthroughBehavior"),
                timeout_in_millis=integration.get("TimeoutInMillis"),
                request_parameters=integration.get("RequestParameters"),
                content_handling=integration.get("ContentHandling"),
                connection_type=integration.get("ConnectionType"),
            )
            for response in integration.get("IntegrationResponses", []):
                apigateway.put_integration_response(
                    function_id=self.rest_api_id,
                    resource_id=self.resource_id,
                    method_type=self.http_method,
                    status_code=response["StatusCode"],
                    selection_pattern=response.get("SelectionPattern"),
                    response_templates=response.get("ResponseTemplates") or {},
                    response_parameters=response.get("ResponseParameters") or {},
                    content_handling=response.get("ContentHandling"),
                )
        for response in properties.get("MethodResponses", []):
            apigateway.put_method_response(
                function_id=self.rest_api_id,
                resource_id=self.resource_id,
                method_type=self.http_method,
                response_code=response["StatusCode"],
                response_models=response.get("ResponseModels"),
                response_parameters=response.get("ResponseParameters"),
            )
        self.physical_id = name

    def delete(self, account_id: str, region_name: str) -> None:
        _apigateway_gone(
            lambda: self.backend("apigateway").delete_method(self.rest_api_id, self.resource_id, self.http_method)
        )


# ----------------------------------------------------------------------------- others


class CdkMetadata(_Gap, CloudFormationModel):
    TYPE = "AWS::CDK::Metadata"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        self.physical_id = name

    def delete(self, account_id: str, region_name: str) -> None:
        pass


class CloudWatchAlarm(_Gap, CloudFormationModel):
    TYPE = "AWS::CloudWatch::Alarm"
    NAME_PROPERTY = "AlarmName"
    ATTRIBUTES = {"Arn": "arn"}

    def create(self, name: str, properties: dict[str, Any]) -> None:
        alarm = self.backend("cloudwatch").put_metric_alarm(
            name=name,
            namespace=properties.get("Namespace"),
            metric_name=properties.get("MetricName"),
            metric_data_queries=_metric_data_queries(properties.get("Metrics")),
            comparison_operator=properties["ComparisonOperator"],
            evaluation_periods=int(properties["EvaluationPeriods"]),
            datapoints_to_alarm=int(properties["DatapointsToAlarm"]) if "DatapointsToAlarm" in properties else None,
            period=int(properties["Period"]) if "Period" in properties else None,
            threshold=float(properties["Threshold"]) if "Threshold" in properties else None,
            statistic=properties.get("Statistic"),
            extended_statistic=properties.get("ExtendedStatistic"),
            description=properties.get("AlarmDescription"),
            dimensions=properties.get("Dimensions", []),
            alarm_actions=properties.get("AlarmActions", []),
            ok_actions=properties.get("OKActions", []),
            insufficient_data_actions=properties.get("InsufficientDataActions", []),
            unit=properties.get("Unit"),
            actions_enabled=_bool(properties.get("ActionsEnabled", True)),
            treat_missing_data=properties.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=properties.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=properties.get("ThresholdMetricId"),
            rule=None,
            tags=properties.get("Tags"),
        )
        self.physical_id = name
        self.arn = alarm.alarm_arn

    def delete(self, account_id: str, region_name: str) -> None:
        self.backend("cloudwatch").delete_alarms([self.physical_id])


def _metric_data_queries(metrics: list[dict[str, Any]] | None) -> list[Any] | None:
    """Metric math (``Metrics``) as moto's PutMetricAlarm handler builds it."""
    if not metrics:
        return None
    from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat

    queries = []
    for metric in metrics:
        stat = metric.get("MetricStat")
        metric_stat = None
        if stat:
            metric_stat = MetricStat(
                metric=Metric(
                    metric_name=stat["Metric"]["MetricName"],
                    namespace=stat["Metric"].get("Namespace"),
                    dimensions=[Dimension(d["Name"], d["Value"]) for d in stat["Metric"].get("Dimensions", [])],
                ),
                period=stat.get("Period"),
                stat=stat.get("Stat"),
                unit=stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                query_id=metric.get("Id"),
                label=metric.get("Label"),
                period=metric.get("Period"),
                return_data=metric.get("ReturnData"),
                expression=metric.get("Expression"),
                metric_stat=metric_stat,
            )
        )
    return queries


class CodeBuildProject(_Gap, CloudFormationModel):
    TYPE = "AWS::CodeBuild::Project"
    NAME_PROPERTY = "Name"
    ATTRIBUTES = {"Arn": "arn"}

    def create(self, name: str, properties: dict[str, Any]) -> None:
        project = self.backend("codebuild").create_project(
            project_name=name,
            description=properties.get("Description"),
            project_source=_camel(properties["Source"]),
            artifacts=_camel(properties["Artifacts"]),
            environment=_camel(properties["Environment"]),
            service_role=properties["ServiceRole"],
            tags=properties.get("Tags"),
            cache=_camel(properties.get("Cache")),
            timeout=properties.get("TimeoutInMinutes"),
            queued_timeout=properties.get("QueuedTimeoutInMinutes"),
            source_version=properties.get("SourceVersion"),
            logs_config=_camel(properties.get("LogsConfig")),
            vpc_config=_camel(properties.get("VpcConfig")),
        )
        self.physical_id = name
        self.arn = project["arn"]

    def delete(self, account_id: str, region_name: str) -> None:
        self.backend("codebuild").delete_project(self.physical_id)


class S3BucketPolicy(_Gap, CloudFormationModel):
    TYPE = "AWS::S3::BucketPolicy"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        self.bucket = properties["Bucket"]
        self.backend("s3").put_bucket_policy(self.bucket, _json_text(properties["PolicyDocument"]).encode())
        self.physical_id = name

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.s3.exceptions import MissingBucket

        with contextlib.suppress(MissingBucket):
            self.backend("s3").delete_bucket_policy(self.bucket)


#: AWS::SNS::Subscription properties that are subscription attributes.
SUBSCRIPTION_ATTRIBUTES = ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy", "DeliveryPolicy")


class SnsSubscription(_Gap, CloudFormationModel):
    TYPE = "AWS::SNS::Subscription"
    ATTRIBUTES = {"Arn": "physical_id"}

    def create(self, name: str, properties: dict[str, Any]) -> None:
        region = properties.get("Region") or self.region_name
        self.sns = _backend("sns", self.account_id, region)
        subscription = self.sns.subscribe(properties["TopicArn"], properties["Endpoint"], properties["Protocol"])
        for attribute in SUBSCRIPTION_ATTRIBUTES:
            if attribute in properties:
                value = properties[attribute]
                # As SetSubscriptionAttributes hands them to moto's backend: RawMessageDelivery a boolean
                # (the string "false" would be true), the policies JSON text.
                converted = _bool(value) if attribute == "RawMessageDelivery" else _json_text(value)
                self.sns.set_subscription_attributes(subscription.arn, attribute, converted)
        self.physical_id = subscription.arn

    def delete(self, account_id: str, region_name: str) -> None:
        self.sns.unsubscribe(self.physical_id)


class SnsTopicPolicy(_Gap, CloudFormationModel):
    TYPE = "AWS::SNS::TopicPolicy"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        sns = self.backend("sns")
        self.previous = {}
        for topic_arn in properties["Topics"]:
            self.previous[topic_arn] = sns.get_topic(topic_arn).policy
            sns.set_topic_attribute(topic_arn, "policy", _json_text(properties["PolicyDocument"]))
        self.physical_id = name

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.sns.exceptions import TopicNotFound

        sns = self.backend("sns")
        for topic_arn, policy in self.previous.items():
            with contextlib.suppress(TopicNotFound):
                sns.set_topic_attribute(topic_arn, "policy", policy)


def _queue_name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


class SqsQueuePolicy(_Gap, CloudFormationModel):
    TYPE = "AWS::SQS::QueuePolicy"

    def create(self, name: str, properties: dict[str, Any]) -> None:
        sqs = self.backend("sqs")
        self.queues = [_queue_name(url) for url in properties["Queues"]]
        for queue in self.queues:
            sqs.set_queue_attributes(queue, {"Policy": _json_text(properties["PolicyDocument"])})
        self.physical_id = name

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.sqs.exceptions import QueueDoesNotExist

        sqs = self.backend("sqs")
        for queue in self.queues:
            with contextlib.suppress(QueueDoesNotExist):
                sqs.set_queue_attributes(queue, {"Policy": ""})


class SecretsManagerSecret(_Gap, CloudFormationModel):
    TYPE = "AWS::SecretsManager::Secret"
    NAME_PROPERTY = "Name"
    ATTRIBUTES = {"Id": "physical_id"}

    def create(self, name: str, properties: dict[str, Any]) -> None:
        secrets = self.backend("secretsmanager")
        value = properties.get("SecretString")
        generate = properties.get("GenerateSecretString")
        if value is None and generate is not None:
            value = _generated_secret(secrets, generate)
        secrets.create_secret(
            name=name,
            secret_string=value,
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags"),
            kms_key_id=properties.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=properties.get("ReplicaRegions", []),
            force_overwrite=False,
        )
        self.physical_id = secrets.describe_secret(name).arn

    def delete(self, account_id: str, region_name: str) -> None:
        self.backend("secretsmanager").delete_secret(
            self.physical_id, recovery_window_in_days=None, force_delete_without_recovery=True
        )


def _generated_secret(secrets: Any, generate: dict[str, Any]) -> str:
    password = json.loads(
        secrets.get_random_password(
            password_length=int(generate.get("PasswordLength", 32)),
            exclude_characters=generate.get("ExcludeCharacters", ""),
            exclude_numbers=_bool(generate.get("ExcludeNumbers", False)),
            exclude_punctuation=_bool(generate.get("ExcludePunctuation", False)),
            exclude_uppercase=_bool(generate.get("ExcludeUppercase", False)),
            exclude_lowercase=_bool(generate.get("ExcludeLowercase", False)),
            include_space=_bool(generate.get("IncludeSpace", False)),
            require_each_included_type=_bool(generate.get("RequireEachIncludedType", True)),
        )
    )["RandomPassword"]
    key = generate.get("GenerateStringKey")
    if key is None:
        return password
    document = json.loads(generate.get("SecretStringTemplate", "{}"))
    document[key] = password
    return json.dumps(document)


GAP_MODELS: tuple[type[_Gap], ...] = (
    ApiGatewayAccount,
    ApiGatewayApiKey,
    ApiGatewayGatewayResponse,
    ApiGatewayStage,
    ApiGatewayUsagePlan,
    ApiGatewayUsagePlanKey,
    ApiGatewayMethod,
    CdkMetadata,
    CloudWatchAlarm,
    CodeBuildProject,
    S3BucketPolicy,
    SnsSubscription,
    SnsTopicPolicy,
    SqsQueuePolicy,
    SecretsManagerSecret,
)


# ----------------------------------------------------------------------------- dynamic references

_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:(secretsmanager|ssm|ssm-secure):([^}]*)\}\}")


def resolve_dynamic_references(value: Any, account_id: str, region_name: str) -> Any:
    """Every ``{{resolve:...}}`` in a property value, resolved as CloudFormation does when it deploys."""
    if isinstance(value, dict):
        return {key: resolve_dynamic_references(item, account_id, region_name) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_dynamic_references(item, account_id, region_name) for item in value]
    if isinstance(value, str) and "{{resolve:" in value:
        return _DYNAMIC_REFERENCE.sub(lambda match: _resolve(match, account_id, region_name), value)
    return value


def _resolve(match: re.Match[str], account_id: str, region_name: str) -> str:
    service, reference = match.groups()
    if service == "secretsmanager":
        return _resolve_secret(reference, account_id, region_name)
    name, _, version = reference.partition(":")
    if version:
        name = f"{name}:{version}"
    parameter = _backend("ssm", account_id, region_name).get_parameter(name)
    if parameter is None:
        raise ValidationError(message=f"dynamic reference {match.group(0)}: no SSM parameter {name}")
    return parameter.value


def _resolve_secret(reference: str, account_id: str, region_name: str) -> str:
    """``secret-id:SecretString:json-key:version-stage:version-id`` (the secret id may be an ARN, with colons)."""
    parts = reference.split(":")
    split = 7 if reference.startswith("arn:") else 1
    secret_id, rest = ":".join(parts[:split]), parts[split:] + [""] * 4
    kind, json_key, version_stage, version_id = rest[:4]
    if kind not in ("", "SecretString"):
        raise ValidationError(message=f"dynamic reference to {secret_id}: only SecretString can be resolved")
    secret = _backend("secretsmanager", account_id, region_name).get_secret_value(
        secret_id, version_id or None, version_stage or None
    )
    text = secret["SecretString"]
    return str(json.loads(text)[json_key]) if json_key else text


# ----------------------------------------------------------------------------- unresolved intrinsics

_INTRINSICS = {
    "Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join", "Fn::If", "Fn::Select", "Fn::Split", "Fn::FindInMap",
    "Fn::ImportValue", "Fn::GetAZs", "Fn::Base64", "Fn::Cidr", "Fn::ToJsonString", "Fn::Length", "Fn::Transform",
}


def _unresolved(value: Any) -> str | None:
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in _INTRINSICS:
            return json.dumps(value)
        for item in value.values():
            found = _unresolved(item)
            if found:
                return found
    if isinstance(value, list):
        for item in value:
            found = _unresolved(item)
            if found:
                return found
    return None


# ----------------------------------------------------------------------------- rules

_RULE_FUNCTIONS = {
    "Fn::Not": lambda args: not args[0],
    "Fn::And": all,
    "Fn::Or": any,
    "Fn::Equals": lambda args: args[0] == args[1],
    "Fn::Contains": lambda args: args[1] in args[0],
    "Fn::EachMemberEquals": lambda args: all(item == args[1] for item in args[0]),
    "Fn::EachMemberIn": lambda args: all(item in args[1] for item in args[0]),
}


def _rule_value(expression: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(expression, list):
        return [_rule_value(item, parameters) for item in expression]
    if isinstance(expression, dict) and len(expression) == 1:
        [(function, argument)] = expression.items()
        if function == "Ref":
            if argument not in parameters:
                raise ValidationError(message=f"Template format error: a rule refers to {argument}, not a parameter")
            return parameters[argument]
        if function in _RULE_FUNCTIONS:
            arguments = argument if isinstance(argument, list) else [argument]
            return _RULE_FUNCTIONS[function]([_rule_value(item, parameters) for item in arguments])
        raise ValidationError(message=f"Template format error: the emulator cannot evaluate {function} in a rule")
    return expression


def check_rules(template: dict[str, Any], parameters: dict[str, Any]) -> None:
    """Each rule whose condition holds must have every assertion hold, or the stack is refused."""
    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], parameters):
            continue
        for assertion in rule.get("Assertions", []):
            if not _rule_value(assertion["Assert"], parameters):
                description = assertion.get("AssertDescription", f"rule {name} failed")
                raise ValidationError(message=description)


# ----------------------------------------------------------------------------- install


_installed = False


def install() -> None:
    """Make moto use the gap models and behave as described in ``GAPS``; idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    model_map = parsing.get_model_map()
    for model in GAP_MODELS:
        if model_map.get(model.TYPE) is not model:
            raise RuntimeError(f"moto does not use the emulator's model for {model.TYPE}: {model_map.get(model.TYPE)}")
    missing = MODELLED_TYPES - {model.TYPE for model in GAP_MODELS}
    if missing:
        raise RuntimeError(f"listed in GAPS but not modelled: {sorted(missing)}")
    _patch_parsing()
    _patch_stack()
    _patch_change_sets()
    _patch_deletes_and_ids()
    _patch_models()
    _patch_event_source_delivery()
    _patch_bucket_policy_conditions()


def _patch_parsing() -> None:
    original_parse_resource = parsing.parse_resource
    original_create = parsing.parse_and_create_resource
    original_load = parsing.ResourceMap.load

    def parse_resource(resource_json: dict[str, Any], resources_map: Any) -> Any:
        parsed = original_parse_resource(resource_json, resources_map)
        if not parsed:
            raise ValidationError(
                message=f"Template error: moto has no model for {resource_json.get('Type')} and the emulator none"
            )
        resource_class, cleaned, resource_type = parsed
        properties = resolve_dynamic_references(
            cleaned.get("Properties", {}), resources_map._account_id, resources_map._region_name
        )
        found = _unresolved(properties)
        if found:
            raise ValidationError(message=f"Template error: {resource_type}: moto could not resolve {found}")
        return resource_class, {**cleaned, "Properties": properties}, resource_type

    def parse_and_create_resource(
        logical_id: str, resource_json: dict[str, Any], resources_map: Any, *args: Any, **kwargs: Any
    ) -> Any:
        try:
            adopted = _adopt(logical_id, resource_json, resources_map)
            if adopted is not None:
                return adopted
            return original_create(logical_id, resource_json, resources_map, *args, **kwargs)
        except Exception as exc:
            # The innermost resource is the one that failed (references create resources lazily).
            if not hasattr(exc, "failed_resource"):
                exc.failed_resource = (logical_id, resource_json.get("Type", ""))  # type: ignore[attr-defined]
            raise

    def load(self: parsing.ResourceMap) -> None:
        original_load(self)
        check_rules(self._template, self.resolved_parameters)

    original_ssm_parameter = parsing.ResourceMap.parse_ssm_parameter

    def parse_ssm_parameter(self: parsing.ResourceMap, value: str, value_type: str) -> Any:
        if _backend("ssm", self._account_id, self._region_name).get_parameter(value) is None:
            raise ValidationError(
                message=f"Unable to fetch parameters [{value}] from parameter store for this account."
            )
        return original_ssm_parameter(self, value, value_type)

    parsing.ResourceMap.parse_ssm_parameter = parse_ssm_parameter

    parsing.parse_resource = parse_resource
    parsing.parse_and_create_resource = parse_and_create_resource
    parsing.ResourceMap.load = load


def _patch_stack() -> None:
    """Rollback of a failed creation; RetainExceptOnCreate kept on delete, not on rollback."""
    original_delete = parsing.ResourceMap.delete
    original_create_resources = cfn_models.Stack.create_resources
    original_stack_delete = cfn_models.Stack.delete

    def delete_keeping_retained(self: parsing.ResourceMap) -> None:
        template_resources = self._resource_json_map
        self._resource_json_map = {
            logical_id: {**resource, "DeletionPolicy": "Retain"}
            if resource.get("DeletionPolicy") == "RetainExceptOnCreate"
            else resource
            for logical_id, resource in template_resources.items()
        }
        try:
            original_delete(self)
        finally:
            self._resource_json_map = template_resources

    def create_resources(self: cfn_models.Stack) -> None:
        try:
            original_create_resources(self)
            self.resource_map.sealed = True
        except Exception as exc:
            self.resource_map.sealed = True
            logical_id, resource_type = getattr(exc, "failed_resource", ("", ""))
            reason = f"{type(exc).__name__}: {_message(exc)}"
            self.events.append(
                cfn_models.Event(
                    stack_id=self.stack_id,
                    stack_name=self.name,
                    logical_resource_id=logical_id or self.name,
                    physical_resource_id="",
                    resource_type=resource_type or "AWS::CloudFormation::Stack",
                    resource_status="CREATE_FAILED",
                    resource_status_reason=reason,
                    resource_properties=None,
                )
            )
            if self.disable_rollback:
                self.status = "CREATE_FAILED"
                self._add_stack_event("CREATE_FAILED", resource_status_reason=reason)
                return
            self.status = "ROLLBACK_IN_PROGRESS"
            self._add_stack_event(
                "ROLLBACK_IN_PROGRESS",
                resource_status_reason=f"The following resource(s) failed to create: [{logical_id}]. "
                "Rollback requested by user.",
            )
            try:
                _delete_created(self.resource_map, original_delete)  # RetainExceptOnCreate ones go too
            except Exception as rollback_exc:
                self.status = "ROLLBACK_FAILED"
                self._add_stack_event("ROLLBACK_FAILED", resource_status_reason=_message(rollback_exc))
                return
            self.status = "ROLLBACK_COMPLETE"
            self._add_stack_event("ROLLBACK_COMPLETE")

    def delete_stack(self: cfn_models.Stack) -> None:
        try:
            original_stack_delete(self)
        except Exception as exc:
            self.status = "DELETE_FAILED"
            self._add_stack_event("DELETE_FAILED", resource_status_reason=f"{type(exc).__name__}: {_message(exc)}")

    original_getitem = parsing.ResourceMap.__getitem__
    original_update = parsing.ResourceMap.update

    def getitem(self: parsing.ResourceMap, key: str) -> Any:
        if getattr(self, "sealed", False) and key not in self._parsed_resources and key in self._resource_json_map:
            return None  # it does not exist (any more): no lazy creation after the stack was created
        return original_getitem(self, key)

    def update(self: parsing.ResourceMap, *args: Any, **kwargs: Any) -> None:
        self.sealed = False  # an update adds resources the lazy way
        try:
            original_update(self, *args, **kwargs)
        finally:
            self.sealed = True

    def stack_resources(self: cfn_models.Stack) -> list[Any]:
        return [resource for resource in self.resource_map.values() if resource is not None]

    parsing.ResourceMap.__getitem__ = getitem
    parsing.ResourceMap.update = update
    cfn_models.Stack.stack_resources = property(stack_resources)
    parsing.ResourceMap.delete = delete_keeping_retained
    cfn_models.Stack.create_resources = create_resources
    cfn_models.Stack.delete = delete_stack


def _delete_created(resource_map: parsing.ResourceMap, delete: Callable[[parsing.ResourceMap], None]) -> None:
    """A rollback: what this creation made goes (Retain kept); what it imported stays as it was."""
    adopted = getattr(resource_map, "adopted", set())
    template_resources = resource_map._resource_json_map
    resource_map._resource_json_map = {
        logical_id: {**resource, "DeletionPolicy": "Retain"} if logical_id in adopted else resource
        for logical_id, resource in template_resources.items()
    }
    try:
        delete(resource_map)
    finally:
        resource_map._resource_json_map = template_resources


def _message(exc: BaseException) -> str:
    for attribute in ("message", "description"):
        text = getattr(exc, attribute, None)
        if isinstance(text, str) and text:
            return text
    return str(exc) or repr(exc)


def _iam_role(name: str, account_id: str, region_name: str) -> Any:
    from moto.iam.models import iam_backends

    roles = [role for role in iam_backends[account_id]["global"].get_roles() if role.name == name]
    return roles[0] if roles else None


#: Types ImportExistingResources can import (their registry schema's primary identifier is their writable
#: name property), each with how the existing resource of a name is found, as the model moto's CloudFormation
#: holds (None: there is none). Secrets and queues are not here: their primary identifiers are read-only.
ADOPTABLE: dict[str, Callable[[str, str, str], Any]] = {
    "AWS::DynamoDB::Table": lambda name, a, r: _backend("dynamodb", a, r).tables.get(name),
    "AWS::S3::Bucket": lambda name, a, r: _backend("s3", a, r).buckets.get(name),
    "AWS::ECR::Repository": lambda name, a, r: _backend("ecr", a, r).repositories.get(name),
    "AWS::Logs::LogGroup": lambda name, a, r: _backend("logs", a, r).groups.get(name),
    "AWS::SSM::Parameter": lambda name, a, r: _backend("ssm", a, r).get_parameter(name),
    "AWS::IAM::Role": _iam_role,
}


def _in_a_stack(resource: Any, account_id: str, region_name: str) -> bool:
    """Whether a live stack holds this very resource (ImportExistingResources leaves those alone)."""
    backend = cfn_models.cloudformation_backends[account_id][region_name]
    return any(
        held is resource
        for stack in backend.stacks.values()
        for held in stack.resource_map._parsed_resources.values()
    )


def _adopt(logical_id: str, resource_json: dict[str, Any], resources_map: Any) -> Any:
    """The existing resource an import adopts for this logical id; None to create it."""
    if not getattr(resources_map, "import_existing", False):
        return None
    if resource_json.get("DeletionPolicy") not in ("Retain", "RetainExceptOnCreate"):
        return None
    resource_type = resource_json["Type"]
    name_property = parsing.resource_name_property_from_type(resource_type)
    find = ADOPTABLE.get(resource_type)
    if find is None or not name_property:
        return None
    name = resource_json.get("Properties", {}).get(name_property)
    if not isinstance(name, str) or not name:
        return None  # no name, or one made with functions: not imported
    existing = find(name, resources_map._account_id, resources_map._region_name)
    if existing is None or _in_a_stack(existing, resources_map._account_id, resources_map._region_name):
        return None
    existing.cf_resource_type = resource_type
    existing.logical_resource_id = logical_id
    resources_map.adopted = getattr(resources_map, "adopted", set()) | {logical_id}
    stack = cfn_models.cloudformation_backends[resources_map._account_id][resources_map._region_name].stacks.get(
        resources_map.stack_id
    )
    if stack is not None:
        stack.events.append(
            cfn_models.Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=logical_id,
                physical_resource_id=existing.physical_resource_id,
                resource_type=resource_type,
                resource_status="IMPORT_COMPLETE",
                resource_status_reason="Resource import completed (ImportExistingResources)",
                resource_properties=None,
            )
        )
    return existing


def _patch_change_sets() -> None:
    from moto.cloudformation.responses import CloudFormationResponse

    original_response = CloudFormationResponse.create_change_set
    original_execute = cfn_models.CloudFormationBackend.execute_change_set

    def create_change_set(self: CloudFormationResponse) -> Any:
        result = original_response(self)
        change_set = self.cloudformation_backend.change_sets[result.result["Id"]]  # type: ignore[index]
        change_set.import_existing = self._get_bool_param("ImportExistingResources", False)
        if change_set.change_set_type == "CREATE":
            try:  # the template loads as CreateStack would load it: parameters, rules
                cfn_models.Stack(
                    stack_id=change_set.stack_id,
                    name=change_set.stack_name,
                    template=change_set.template,
                    parameters=change_set.parameters,
                    account_id=self.current_account,
                    region_name=self.region,
                )
            except ValidationError as exc:
                change_set.status = "FAILED"
                change_set.execution_status = "UNAVAILABLE"
                change_set.status_reason = _message(exc)
        return result

    def execute_change_set(self: cfn_models.CloudFormationBackend, change_set_name: str,
                           stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        if change_set is None or change_set.change_set_type != "CREATE":
            return original_execute(self, change_set_name, stack_name)
        if change_set.execution_status != "AVAILABLE":
            raise ValidationError(
                message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution "
                f"status of [{change_set.execution_status}]"
            )
        stack = self.stacks[change_set.stack_id]
        stack.template = change_set.template
        stack._parse_template()
        stack.parameters = change_set.parameters
        stack.resource_map = stack._create_resource_map()
        stack.resource_map.import_existing = getattr(change_set, "import_existing", False)
        stack.output_map = stack._create_output_map()
        change_set.execution_status = "EXECUTE_IN_PROGRESS"
        stack._add_stack_event("CREATE_IN_PROGRESS", resource_status_reason="User Initiated")
        stack.create_resources()  # as CreateStack: rollback on failure
        change_set.execution_status = "EXECUTE_COMPLETE" if stack.status == "CREATE_COMPLETE" else "EXECUTE_FAILED"

    CloudFormationResponse.create_change_set = create_change_set
    cfn_models.CloudFormationBackend.execute_change_set = execute_change_set


def _patch_deletes_and_ids() -> None:
    from moto.apigateway.models import Deployment, RestAPI, apigateway_backends
    from moto.awslambda.models import LayerVersion, Permission
    from moto.awslambda.utils import get_backend as lambda_backend
    from moto.events.models import EventBus

    def delete_rest_api(self: RestAPI, account_id: str, region_name: str) -> None:
        apigateway_backends[account_id][region_name].delete_rest_api(self.id)

    def delete_layer_version(self: LayerVersion, account_id: str, region_name: str) -> None:
        lambda_backend(account_id, region_name).delete_layer_version(self.name, str(self.version))

    RestAPI.delete = delete_rest_api  # type: ignore[attr-defined]
    LayerVersion.delete = delete_layer_version  # type: ignore[attr-defined]
    physical_ids: dict[type, Callable[[Any], str]] = {
        Deployment: lambda deployment: deployment.id,
        EventBus: lambda bus: bus.name,
        LayerVersion: lambda layer: layer.arn,
    }
    for model, physical_id in physical_ids.items():
        if not hasattr(model, "physical_resource_id"):
            model.physical_resource_id = property(physical_id)  # type: ignore[attr-defined]
    original_permission = Permission.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_permission(cls: type, resource_name: str, cloudformation_json: dict[str, Any], *args: Any,
                          **kwargs: Any) -> Any:
        permission = original_permission(cls, resource_name, cloudformation_json, *args, **kwargs)
        permission.physical_id = f"{cloudformation_json['Properties']['FunctionName']}|{resource_name}"
        return permission

    Permission.create_from_cloudformation_json = classmethod(create_permission)  # type: ignore[assignment]
    if not hasattr(Permission, "physical_resource_id"):
        Permission.physical_resource_id = property(lambda self: getattr(self, "physical_id", None))  # type: ignore[attr-defined]


#: AWS::Lambda::Function properties moto's model drops, and CreateFunction's name for each.
FUNCTION_PROPERTIES = {
    "Layers": "Layers",
    "Architectures": "Architectures",
    "TracingConfig": "TracingConfig",
    "LoggingConfig": "LoggingConfig",
    "EphemeralStorage": "EphemeralStorage",
    "DeadLetterConfig": "DeadLetterConfig",
    "ImageConfig": "ImageConfig",
    "PackageType": "PackageType",
    "KmsKeyArn": "KMSKeyArn",
}


def _patch_models() -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.ssm.models import Parameter

    original_parameter = Parameter.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_parameter(cls: type, resource_name: str, cloudformation_json: dict[str, Any], *args: Any,
                         **kwargs: Any) -> Any:
        properties = cloudformation_json.get("Properties", {})
        if isinstance(properties.get("Tags"), dict):
            tags = [{"Key": key, "Value": value} for key, value in properties["Tags"].items()]
            cloudformation_json = {**cloudformation_json, "Properties": {**properties, "Tags": tags}}
        return original_parameter(cls, resource_name, cloudformation_json, *args, **kwargs)

    Parameter.create_from_cloudformation_json = classmethod(create_parameter)  # type: ignore[assignment]

    original_function = LambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_function(cls: type, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
                        region_name: str, **kwargs: Any) -> Any:
        from moto.awslambda.utils import get_backend as lambda_backend

        properties = cloudformation_json["Properties"]
        if "ZipFile" in properties.get("Code", {}):
            # moto's own model turns inline code into a zip; nothing else it drops matters for inline code
            return original_function(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        spec = {
            key: properties[key]
            for key in ("Code", "Handler", "Role", "Runtime", "Description", "MemorySize", "Publish", "Timeout",
                        "VpcConfig", "Environment", "ReservedConcurrentExecutions")
            if key in properties
        }
        spec["FunctionName"] = resource_name
        for cfn_name, api_name in FUNCTION_PROPERTIES.items():
            if cfn_name in properties:
                spec[api_name] = properties[cfn_name]
        if "Tags" in properties:
            spec["Tags"] = _tags_dict(properties["Tags"])
        return lambda_backend(account_id, region_name).create_function(spec)

    LambdaFunction.create_from_cloudformation_json = classmethod(create_function)  # type: ignore[assignment]


def _patch_event_source_delivery() -> None:
    """Messages stay in a mapped queue: no Docker-run Lambda takes them as they are sent."""
    from moto.sqs.models import Queue

    original_add_message = Queue.add_message

    def add_message(self: Queue, message: Any) -> None:
        mappings = self.lambda_event_source_mappings
        self.lambda_event_source_mappings = {}
        try:
            original_add_message(self, message)
        finally:
            self.lambda_event_source_mappings = mappings

    Queue.add_message = add_message


def _condition_holds(condition: dict[str, Any] | None) -> bool:
    """A statement's Condition in a request that came over TLS; False for any condition not emulated."""
    for operator, tests in (condition or {}).items():
        for key, value in tests.items():
            if operator != "Bool" or key.lower() != "aws:securetransport":
                return False
            if str(value[0] if isinstance(value, list) else value).lower() != "true":
                return False
    return True


def _patch_bucket_policy_conditions() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        statements = document.get("Statement", [])
        statements = statements if isinstance(statements, list) else [statements]
        applying = [
            {key: item for key, item in statement.items() if key != "Condition"}
            for statement in statements
            if _condition_holds(statement.get("Condition"))
        ]
        if not applying:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**document, "Statement": applying})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission
