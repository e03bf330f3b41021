"""The CDK app: the core stack and one stack per service, from the same declarations as the local stack.

``cdk synth`` / ``cdk deploy`` run it (``infra/aws/cdk.json``; ``make synth``,
``make deploy [SERVICE=<name>]``). Context (``-c name=value``):

- ``prefix``: the prefix of every name (``sdmw``, as locally);
- ``only``: render this one service's stack alone, without the core (it needs
  nothing from the core's template: each service stack stands alone);
- ``runtime_image``: an sd-runtime image URI to use instead of building the
  image asset (e.g. one pushed to the core's ECR repository by CI);
- ``retain_data``: ``false`` to let a teardown delete the bucket, tables and
  repository with their contents (kept by default, and adopted by the next
  deploy);
- ``alarm_email``: an address subscribed to the alarm topic;
- ``image_build``: ``codebuild`` to build the sd-runtime image in AWS instead
  of on the deploying machine (``infra.aws.runtime_image``).

``cdk deploy`` tells the app the deploying account and region
(``CDK_DEFAULT_ACCOUNT``/``CDK_DEFAULT_REGION``): the stacks then carry them as
literals, which kept resources' names need to be adopted. Without them (an
offline synth) the templates are environment-agnostic.

The Lambda packages and the image's build context come from ``make package``
(``infra.aws.package``); synth checks nothing else on disk and needs no AWS
account and no Docker.
"""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk

from infra.aws import nag
from infra.aws.core_stack import CoreStack
from infra.aws.package import DEFAULT_OUT, Packages, built_packages
from infra.aws.service_stack import ServiceStack
from infra.catalog import SERVICES
from infra.core import CORE
from service_kit.resources import ServiceResources


def stack_name(prefix: str, part: str) -> str:
    return f"{prefix}-{part}"


#: Feature flags the stacks rely on (set before any construct is made).
FEATURE_FLAGS = {
    # Server access logs are delivered under a bucket policy, not the legacy ACL.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def build_app(app: cdk.App, packages: Packages) -> cdk.App:
    for flag, value in FEATURE_FLAGS.items():
        app.node.set_context(flag, value)
    prefix = app.node.try_get_context("prefix") or "sdmw"
    only = app.node.try_get_context("only")
    retain_data = str(app.node.try_get_context("retain_data") or "true").lower() != "false"
    if only and only not in {s.service for s in SERVICES}:
        raise ValueError(f"no service named {only!r}; the services are {', '.join(s.service for s in SERVICES)}")
    stacks: list[cdk.Stack] = []
    core = None
    env = deploying_environment()
    if not only:
        core = CoreStack(
            app,
            stack_name(prefix, "core"),
            prefix=prefix,
            core=CORE,
            image_context=packages.image_context,
            runtime_image_uri=app.node.try_get_context("runtime_image"),
            retain_data=retain_data,
            alarm_email=app.node.try_get_context("alarm_email") or None,
            image_build=app.node.try_get_context("image_build") or None,
            env=env,
            description="Stable Diffusion middleware: the bus, bucket, topics, image and SageMaker role",
        )
        stacks.append(core)
    for resources in SERVICES:
        if only in (None, resources.service):
            service = _service_stack(app, prefix, resources, packages, retain_data, env)
            if core:
                # Deploy order only (the core first): no export, no reference in the template.
                service.add_stack_dependency(core)
            stacks.append(service)
    for stack in stacks:
        cdk.Tags.of(stack).add("project", prefix)
    nag.check(app)
    return app


def deploying_environment() -> cdk.Environment | None:
    """The account and region ``cdk deploy`` resolved from its credentials, when it runs the app."""
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    return cdk.Environment(account=account, region=region) if account and region else None


def _service_stack(
    app: cdk.App,
    prefix: str,
    resources: ServiceResources,
    packages: Packages,
    retain_data: bool,
    env: cdk.Environment | None,
) -> ServiceStack:
    return ServiceStack(
        app,
        stack_name(prefix, resources.service),
        prefix=prefix,
        core=CORE,
        resources=resources,
        code_dir=packages.function_dirs[resources.service],
        layer_dir=packages.layer_dir,
        retain_data=retain_data,
        env=env,
        description=f"Stable Diffusion middleware: {resources.service}",
    )


def main(out: Path = DEFAULT_OUT) -> None:
    app = cdk.App()
    build_app(app, built_packages(out))
    app.synth()


if __name__ == "__main__":
    main()
