"""The api-gateway's public face on AWS: an API Gateway REST API in front of the edge's Lambda.

The seed system was an API Gateway REST API with a ``prod`` stage, API keys and
the console's CORS; this renders the same: every path the edge serves
(``api_gateway.app.served_routes``) as its own resource and method, each
needing a key, the CORS preflight answered by API Gateway without one, and
error answers carrying ``Access-Control-Allow-Origin`` so a browser can read
them. The key's value lives in Secrets Manager; API Gateway checks it first,
and the edge checks it again (``API_KEYS_SECRET``).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy, SecretValue
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from api_gateway.app import served_routes
from api_gateway.cors import ALLOWED_HEADERS, ALLOWED_METHODS
from api_gateway.limits import TOO_LARGE_BODY
from infra.aws import nag
from infra.aws.kept_secrets import API_KEY_FIELD, api_key_secret_name

STAGE = "prod"
#: Per-key limits of the usage plan (requests per second, burst).
RATE_LIMIT, BURST_LIMIT = 50, 100
#: The header a key is sent in: the seed's clients and the WebUI extension send ``x-api-key``.
CORS_ERROR_HEADERS = {"Access-Control-Allow-Origin": "'*'"}


class RestApiFront(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, handler: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        # Made by make deploy's preflight and kept outside the stacks: clients keep their key across a
        # teardown and a redeploy (infra.aws.kept_secrets).
        self.key_secret = secretsmanager.Secret.from_secret_name_v2(
            self, "ApiKeySecret", api_key_secret_name(prefix)
        )
        self.key_secret.grant_read(handler)
        handler.add_environment("API_KEYS_SECRET", self.key_secret.secret_name)
        handler.add_environment("API_STAGE", STAGE)

        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.api = apigateway.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{prefix}-api",
            description="Stable Diffusion train-and-deploy API",
            api_key_source_type=apigateway.ApiKeySourceType.HEADER,
            cloud_watch_role=False,  # the account's logging role is set below, named and kept
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE,
                tracing_enabled=True,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                throttling_rate_limit=RATE_LIMIT,
                throttling_burst_limit=BURST_LIMIT,
            ),
            default_method_options=apigateway.MethodOptions(api_key_required=True),
            default_cors_preflight_options=apigateway.CorsOptions(
                allow_origins=apigateway.Cors.ALL_ORIGINS,
                allow_methods=list(ALLOWED_METHODS),
                allow_headers=list(ALLOWED_HEADERS),
            ),
        )
        self._execution_logs()
        self._account_logging_role(prefix)
        # A body API Gateway refuses (over its 10 MB) gets the edge's own 413 sentence (no ``$`` in it: gateway
        # response templates substitute variables); the edge answers it for bodies over Lambda's payload.
        self.api.add_gateway_response(
            "RequestTooLarge",
            type=apigateway.ResponseType.REQUEST_TOO_LARGE,
            status_code="413",
            response_headers=CORS_ERROR_HEADERS,
            templates={"application/json": TOO_LARGE_BODY.decode()},
        )
        for response_type in (apigateway.ResponseType.DEFAULT_4_XX, apigateway.ResponseType.DEFAULT_5_XX):
            self.api.add_gateway_response(
                f"Cors-{response_type.response_type}", type=response_type, response_headers=CORS_ERROR_HEADERS
            )
        # One permission for the whole API instead of two per method: Lambda caps a function's resource
        # policy at 20 KB, and 2 x 64 method-scoped statements are about 55 KB.
        integration = apigateway.LambdaIntegration(handler, proxy=True, scope_permission_to_method=False)
        for method, path in served_routes():
            self.api.root.resource_for_path(path).add_method(method, integration)
        self._key_and_plan(prefix)
        self._acknowledge_findings()
        CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the API (the prod stage).")
        CfnOutput(self, "ApiKeySecretName", value=self.key_secret.secret_name, description="Holds the API key.")

    def _account_logging_role(self, prefix: str) -> None:
        """API Gateway logs with one role per account and region (``AWS::ApiGateway::Account``).

        Both are kept when this stack is deleted (other APIs of the account may log with the role by then),
        and the role is named, so the next deploy adopts it instead of leaving one more behind.
        """
        role = iam.Role(
            self,
            "CloudWatchRole",
            role_name=f"{prefix}-apigateway-logs",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonAPIGatewayPushToCloudWatchLogs")
            ],
            description="API Gateway writes the account's API execution and access logs with it.",
        )
        role.apply_removal_policy(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
        account = apigateway.CfnAccount(self, "Account", cloud_watch_role_arn=role.role_arn)
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        # A stage that logs is refused until the account has its role.
        self.api.deployment_stage.node.add_dependency(account)
        self._logging_role = role

    def _execution_logs(self) -> None:
        """API Gateway would create the stage's execution log group itself, kept forever: declared first."""
        group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{STAGE}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api.deployment_stage.node.add_dependency(group)

    def _acknowledge_findings(self) -> None:
        api_key_contract = (
            "The seed API's contract is an API key in x-api-key (the WebUI extension and every client send it); "
            "API Gateway requires it on every method but the CORS preflight, and the edge checks it again."
        )
        nag.acknowledge(self.api, "APIG4", api_key_contract)
        nag.acknowledge(self.api, "COG4", api_key_contract)
        nag.acknowledge(
            self.api,
            "APIG2",
            "The edge validates every body and query with the contract's models and answers the seed's 422 "
            "shape ({detail:[{loc,msg,type}]}); API Gateway's validator would answer another.",
        )
        nag.acknowledge(
            self.api,
            "APIG3",
            "No WAF web ACL by default (it costs at rest); keys, the usage plan's throttle and the stage's "
            "throttle bound abuse. Associate an account's web ACL with the stage where policy requires one.",
        )
        nag.acknowledge(
            self._logging_role,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway writes execution logs with; AWS's policy made for exactly that.",
        )

    def _key_and_plan(self, prefix: str) -> None:
        key = apigateway.ApiKey(
            self,
            "ApiKey",
            api_key_name=f"{prefix}-api-key",
            # A dynamic reference to the secret by name, resolved by CloudFormation at deploy time.
            value=SecretValue.secrets_manager(self.key_secret.secret_name, json_field=API_KEY_FIELD).unsafe_unwrap(),
        )
        plan = apigateway.UsagePlan(
            self,
            "UsagePlan",
            name=f"{prefix}-usage-plan",
            throttle=apigateway.ThrottleSettings(rate_limit=RATE_LIMIT, burst_limit=BURST_LIMIT),
            api_stages=[apigateway.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        plan.add_api_key(key)
        CfnOutput(self, "ApiKeyId", value=key.key_id, description="aws apigateway get-api-key --include-value")
