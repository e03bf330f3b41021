"""The api-gateway's public face on AWS: an API Gateway REST API in front of the edge's Lambda.

The seed system was an API Gateway REST API with a ``prod`` stage, API keys and
the console's CORS; this renders the same: every path the edge serves
(``api_gateway.app.served_routes``) as its own resource and method, each
needing a key, the CORS preflight answered by API Gateway without one, and
error answers carrying ``Access-Control-Allow-Origin`` so a browser can read
them. The key's value lives in Secrets Manager; API Gateway checks it first,
and the edge checks it again (``API_KEYS_SECRET_ARN``).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from api_gateway.app import served_routes
from api_gateway.cors import ALLOWED_HEADERS, ALLOWED_METHODS
from api_gateway.limits import TOO_LARGE_BODY
from infra.aws import nag
from infra.aws.naming import KEPT_SECRET

STAGE = "prod"
#: Per-key limits of the usage plan (requests per second, burst).
RATE_LIMIT, BURST_LIMIT = 50, 100
#: The header a key is sent in: the seed's clients and the WebUI extension send ``x-api-key``.
CORS_ERROR_HEADERS = {"Access-Control-Allow-Origin": "'*'"}


class RestApiFront(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, handler: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        self.key_secret = secretsmanager.Secret(
            self,
            "ApiKeySecret",
            secret_name=f"{prefix}/api-key",
            description="The value of the API key clients send as x-api-key.",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=40, exclude_punctuation=True, include_space=False
            ),
            # Kept when the stack is deleted (clients keep their key; a deleted secret's name stays taken for
            # its recovery window), adopted by the next deploy (--import-existing-resources).
            removal_policy=KEPT_SECRET,
        )
        self.key_secret.grant_read(handler)
        handler.add_environment("API_KEYS_SECRET_ARN", self.key_secret.secret_arn)
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
            # API Gateway logs with one role per account and region (AWS::ApiGateway::Account). Kept when this
            # stack is deleted: other APIs of the account may log with it by then.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
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
        CfnOutput(self, "ApiKeySecretArn", value=self.key_secret.secret_arn, description="Holds the API key.")

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
            self.api,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway writes execution logs with; AWS's policy made for exactly that.",
        )
        nag.acknowledge(
            self.key_secret,
            "SMG4",
            "The secret is the API key clients hold; rotating it is an operator's decision, made with the "
            "clients (README: rotate the key).",
        )

    def _key_and_plan(self, prefix: str) -> None:
        key = apigateway.ApiKey(
            self,
            "ApiKey",
            api_key_name=f"{prefix}-api-key",
            value=self.key_secret.secret_value.unsafe_unwrap(),  # a dynamic reference, resolved by CloudFormation
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
