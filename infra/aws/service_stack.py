"""One service's stack, rendered from its ``ServiceResources`` declaration.

Its table, queue and dead-letter queue, rules, topic subscriptions, schedules,
Lambda functions with least-privilege policies, and alarms. It finds the core
through ``naming.core_references`` only, so it deploys, updates and rolls back
on its own. The api-gateway stack adds the REST API (``rest_api``).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.aws import nag
from infra.aws.grants import nag_finding, policy_statement, wildcard_reason
from infra.aws.naming import core_references, data_removal, service_environment
from infra.aws.package import LAMBDA_ARCHITECTURE, LAMBDA_PYTHON
from infra.aws.rest_api import RestApiFront
from service_kit.config import WEBHOOK_SIGNING_KEY_VARIABLE
from service_kit.resources import (
    DEFAULT_BUS,
    CoreResources,
    LambdaFunction,
    Rule,
    Schedule,
    ServiceResources,
)

#: What the services do to their own table: snapshots, the read model, Powertools' idempotency records.
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query")
RUNTIMES = {"3.11": lambda_.Runtime.PYTHON_3_11, "3.12": lambda_.Runtime.PYTHON_3_12}
ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class ServiceStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        core: CoreResources,
        resources: ServiceResources,
        code_dir: Path,
        layer_dir: Path,
        retain_data: bool,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.prefix = prefix
        self.resources = resources
        self.core = core_references(self, prefix, core, resources.runs_sd_runtime)
        self.alarm_topic = sns.Topic.from_topic_arn(self, "AlarmTopic", self.core.alarm_topic_arn)
        removal = data_removal(retain_data)

        self.table = self._table(removal) if resources.table else None
        self.queue = self._queue_with_dlq() if resources.queue else None
        if self.queue:
            for rule in resources.rules:
                self._rule(rule)
            for schedule in resources.schedules:
                self._schedule(schedule)
            for subscription in resources.topic_subscriptions:
                topic = sns.Topic.from_topic_arn(
                    self, f"Topic-{subscription.topic}", self.core.topic_arns[subscription.topic]
                )
                topic.add_subscription(
                    subscriptions.SqsSubscription(
                        self.queue, raw_message_delivery=subscription.raw_message_delivery
                    )
                )
        layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[RUNTIMES[LAMBDA_PYTHON]],
            compatible_architectures=[ARCHITECTURES[LAMBDA_ARCHITECTURE]],
            description="Pinned third-party packages of the project's Lambda functions.",
        )
        code = lambda_.Code.from_asset(str(code_dir))
        self.functions = {function.name: self._function(function, code, layer) for function in resources.functions}
        http = [f for f in resources.functions if f.trigger == "http"]
        if http:
            self.api = RestApiFront(self, "Api", prefix=prefix, handler=self.functions[http[0].name])

    # State and messages

    def _table(self, removal: RemovalPolicy) -> dynamodb.Table:
        declared = self.resources.table
        table = dynamodb.Table(
            self,
            "Table",
            table_name=self.resources.table_name(self.prefix),
            partition_key=_string("pk"),
            sort_key=_string("sk"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=declared.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal,
        )
        for index in declared.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_string(index.partition_key),
                sort_key=_string(index.sort_key),
                projection_type=dynamodb.ProjectionType(index.projection),
            )
        return table

    def _queue_with_dlq(self) -> sqs.Queue:
        declared = self.resources.queue
        dlq = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=self.resources.dlq_name(self.prefix),
            retention_period=Duration.seconds(declared.dlq_retention_s),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.dlq = dlq
        queue = sqs.Queue(
            self,
            "Queue",
            queue_name=self.resources.queue_name(self.prefix),
            visibility_timeout=Duration.seconds(declared.visibility_timeout_s),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=declared.max_receive_count),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self._alarm(
            "DeadLetters",
            dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(1), statistic="Maximum"),
            f"{self.resources.service}: messages its handlers gave up on are waiting in its dead-letter queue.",
        )
        return queue

    def _rule(self, rule: Rule) -> None:
        bus = "default" if rule.bus == DEFAULT_BUS else self.core.bus_name
        self._queue_rule(rule, EventBusName=bus, EventPattern=rule.event_pattern)

    def _schedule(self, schedule: Schedule) -> None:
        self._queue_rule(schedule, ScheduleExpression=schedule.expression())

    def _queue_rule(self, rule: Rule | Schedule, **properties) -> None:
        """An EventBridge rule onto the service's queue, allowed to send to it and to nothing else."""
        cfn_rule = events.CfnRule(
            self,
            f"Rule-{rule.name}",
            name=self.resources.rule_name(self.prefix, rule),
            state="ENABLED",
            event_bus_name=properties.get("EventBusName"),
            event_pattern=properties.get("EventPattern"),
            schedule_expression=properties.get("ScheduleExpression"),
            targets=[events.CfnRule.TargetProperty(id="queue", arn=self.queue.queue_arn)],
        )
        self.queue.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.queue.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": cfn_rule.attr_arn}},
            )
        )

    # Functions

    def _function(self, declared: LambdaFunction, code: lambda_.Code, layer: lambda_.LayerVersion) -> lambda_.Function:
        name = self.resources.function_name(self.prefix, declared)
        log_group = logs.LogGroup(
            self,
            f"Logs-{declared.name}",
            log_group_name=f"/aws/lambda/{name}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = self._function_role(declared, log_group)
        function = lambda_.Function(
            self,
            f"Function-{declared.name}",
            function_name=name,
            role=role,
            runtime=RUNTIMES[LAMBDA_PYTHON],
            architecture=ARCHITECTURES[LAMBDA_ARCHITECTURE],
            handler=declared.handler,
            code=code,
            layers=[layer],
            timeout=Duration.seconds(declared.timeout_s),
            memory_size=declared.memory_mb,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment=self._environment(),
        )
        self._grant(function)
        nag.acknowledge(
            function,
            "L1",
            f"Pinned to python{LAMBDA_PYTHON}, the version the layer's wheels are built for (infra/aws/package.py); "
            "the two move together.",
        )
        if declared.trigger == "queue":
            function.add_event_source(
                event_sources.SqsEventSource(
                    self.queue, batch_size=declared.batch_size, report_batch_item_failures=True
                )
            )
        self._alarm(
            f"Errors-{declared.name}",
            function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            f"{name} raised errors (its messages are retried, then dead-lettered).",
        )
        return function

    def _function_role(self, declared: LambdaFunction, log_group: logs.LogGroup) -> iam.Role:
        """Instead of AWSLambdaBasicExecutionRole (logs anywhere): the function's own log group only."""
        role = iam.Role(
            self,
            f"Role-{declared.name}",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.resources.service} {declared.name}: only what the service declares it uses.",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
            )
        )
        nag.acknowledge(
            role,
            "IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords (active tracing) have no resource-level permissions.",
        )
        return role

    def _environment(self) -> dict[str, str]:
        env = {
            **service_environment(self.core),
            **self.resources.environment,
            "POWERTOOLS_SERVICE_NAME": self.resources.service,
            "LOG_LEVEL": "INFO",
        }
        if self.table:
            env["SDMW_TABLE"] = self.table.table_name
        if self.queue:
            env["SDMW_QUEUE_URL"] = self.queue.queue_url
            if self.resources.queue.sends_to_itself:
                env["SDMW_DLQ_URL"] = self.dlq.queue_url
        if self.resources.signs_webhooks:
            env[WEBHOOK_SIGNING_KEY_VARIABLE] = self.core.webhook_signing_key
        if self.resources.runs_sd_runtime:
            env["SD_RUNTIME_IMAGE"] = self.core.runtime_image_uri
            env["SAGEMAKER_ROLE_ARN"] = self.core.sagemaker_role_arn
        return env

    def _grant(self, function: lambda_.Function) -> None:
        """Its own table, events onto the project bus, and what the declaration grants; nothing else."""
        if self.table:
            # Queries of an index need its own ARN; each declared index is named, so no wildcard.
            indexes = [f"{self.table.table_arn}/index/{index.name}" for index in self.resources.table.indexes]
            function.add_to_role_policy(
                iam.PolicyStatement(actions=list(TABLE_ACTIONS), resources=[self.table.table_arn, *indexes])
            )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[self.core.bus_arn])
        )
        if self.queue and self.resources.queue.sends_to_itself:
            self.queue.grant_send_messages(function)
            self.dlq.grant_send_messages(function)
        if self.resources.signs_webhooks:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=[self.core.webhook_signing_key_arn]
                )
            )
        for grant in self.resources.grants:
            function.add_to_role_policy(policy_statement(grant, self.core))
            reason = wildcard_reason(grant)
            if reason and grant.resource != "*":
                nag.acknowledge(function.role, f"IAM5[{nag_finding(grant.resource, self.core)}]", reason)

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, description: str) -> None:
        alarm = cloudwatch.Alarm(
            self,
            f"Alarm-{construct_id}",
            alarm_name=f"{self.prefix}-{self.resources.service}-{construct_id.lower()}",
            alarm_description=description,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alarm_topic))


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
