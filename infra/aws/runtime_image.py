"""How the sd-runtime image SageMaker runs gets into the core's ECR repository.

Three ways, chosen at deploy time (``make deploy``):

- ``RUNTIME_IMAGE=<uri>``: an image that is already pushed; nothing is built.
- the default: a Docker image asset, built by ``cdk deploy`` on the deploying
  machine (Docker needed there, and an amd64 build: CUDA images are amd64).
- ``IMAGE_BUILD=codebuild``: built in AWS, for machines without Docker or on
  ARM. The build context is uploaded as a file asset (no Docker needed), a
  CodeBuild project builds and pushes it to the core's repository under the
  context's content hash, and ``make deploy`` starts that build and waits for
  it (``infra.aws.codebuild_run``). The SSM parameter names that tag from the
  start; SageMaker pulls it only when an endpoint or a training job starts.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.aws import nag

#: The context value of ``image_build`` that selects the CodeBuild path.
CODEBUILD = "codebuild"
#: A CUDA + torch image is 10+ GB: the large compute type has the disk and the memory for it.
COMPUTE = codebuild.ComputeType.LARGE
BUILD_TIMEOUT = Duration.hours(2)

BUILDSPEC = {
    "version": "0.2",
    "phases": {
        "pre_build": {
            "commands": [
                'aws ecr get-login-password --region "$AWS_REGION" '
                '| docker login --username AWS --password-stdin "${REPOSITORY_URI%%/*}"',
            ]
        },
        "build": {
            "on-failure": "ABORT",
            "commands": ['docker build --platform linux/amd64 -t "$REPOSITORY_URI:$IMAGE_TAG" .'],
        },
        "post_build": {"commands": ['docker push "$REPOSITORY_URI:$IMAGE_TAG"']},
    },
}


def project_name(prefix: str) -> str:
    return f"{prefix}-runtime-image"


class CodeBuildImage(Construct):
    """The image's build context as an S3 asset, and the project that builds it into ``repository``."""

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, context: Path, repository: ecr.Repository):
        super().__init__(scope, construct_id)
        source = s3_assets.Asset(self, "Context", path=str(context))
        self.tag = source.asset_hash
        self.image_uri = repository.repository_uri_for_tag(self.tag)
        build_logs = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.project = codebuild.Project(
            self,
            "Project",
            project_name=project_name(prefix),
            description="Builds the sd-runtime image from the deployed build context and pushes it to ECR.",
            source=codebuild.Source.s3(bucket=source.bucket, path=source.s3_object_key),
            build_spec=codebuild.BuildSpec.from_object(BUILDSPEC),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=COMPUTE,
                privileged=True,  # docker build needs the Docker daemon
            ),
            environment_variables={
                "REPOSITORY_URI": codebuild.BuildEnvironmentVariable(value=repository.repository_uri),
                "IMAGE_TAG": codebuild.BuildEnvironmentVariable(value=self.tag),
            },
            timeout=BUILD_TIMEOUT,
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=build_logs)),
        )
        repository.grant_pull_push(self.project)
        source.grant_read(self.project)
        self._acknowledge_findings()

    def _acknowledge_findings(self) -> None:
        stack = Stack.of(self)
        project = f"<{stack.get_logical_id(self.project.node.default_child)}>"
        # As cdk-nag writes them: literal under cdk deploy (the stack has the deploying account), else tokens.
        account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
        region_name = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        region = f"arn:<AWS::Partition>:{{}}:{region_name}:{account}"
        nag.acknowledge(
            self.project,
            "CB3",
            "Privileged mode runs the Docker daemon the image build needs; the project builds only the "
            "context this stack uploads.",
        )
        nag.acknowledge(
            self.project,
            "CB4",
            "The build's artifacts are an image in the core's ECR repository (encrypted at rest by ECR); "
            "CodeBuild's AWS-managed key covers its own logs and cache.",
        )
        nag.acknowledge(
            self.project.role,
            "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; CodeBuild's report groups and "
            "log streams are named per build.",
        )
        for finding in (
            "Action::s3:GetObject*",
            "Action::s3:GetBucket*",
            "Action::s3:List*",
        ):
            nag.acknowledge(self.project.role, f"IAM5[{finding}]", "The CDK's read grant on the one context asset.")
        nag.acknowledge(
            self.project.role,
            f"IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-{account}-{region_name}/*]",
            "The context asset's key is its content hash, in the CDK's asset bucket.",
        )
        nag.acknowledge(
            self.project.role,
            f"IAM5[Resource::{region.format('codebuild')}:report-group/{project}-*]",
            "CodeBuild names a report group per build after its project.",
        )
        nag.acknowledge(
            self.project.role,
            f"IAM5[Resource::{region.format('logs')}:log-group:/aws/codebuild/{project}:*]",
            "CodeBuild's default log group grant, per build stream.",
        )
