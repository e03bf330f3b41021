"""A service's declared ``Grant``s as IAM policy statements."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam

from infra.aws.naming import CoreReferences
from service_kit.resources import ANY_RESOURCE, BUCKET, BUCKET_OBJECTS, SAGEMAKER_ROLE, Grant


def resource_arns(resource: str, core: CoreReferences) -> list[str]:
    """The ARNs a symbolic resource of ``service_kit.resources`` stands for."""
    if resource == BUCKET:
        return [core.bucket_arn]
    if resource == BUCKET_OBJECTS:
        return [f"{core.bucket_arn}/*"]
    if resource == SAGEMAKER_ROLE:
        return [core.sagemaker_role_arn]
    if resource == ANY_RESOURCE:
        return ["*"]
    service, _, rest = resource.partition(":")
    if service == "iam":
        return [f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:{rest}"]
    if service in ("sagemaker", "cloudwatch", "logs"):
        return [f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{Aws.ACCOUNT_ID}:{rest}"]
    raise ValueError(f"no ARN rule for the declared resource {resource!r}")


#: Why a declared resource ends in a wildcard (cdk-nag's IAM5 asks for the evidence).
WILDCARD_REASONS = {
    BUCKET_OBJECTS: "Object keys are made at run time from job and asset ids; the grant is one bucket's objects.",
    "sagemaker:": "SageMaker models, endpoints and jobs are named at run time from users' requests; the grant "
    "is limited to one resource type in this account and region.",
    "cloudwatch:": "The alarms are named after endpoints, which users name at deploy time.",
    "logs:": "SageMaker names each endpoint's log group after the endpoint, which users name at deploy time.",
    "iam:": "The service-linked role's name is chosen by AWS; the grant is conditioned on the service name.",
}


def nag_finding(resource: str, core: CoreReferences) -> str:
    """How cdk-nag names a wildcard resource of this grant (``Resource::...``), tokens as ``<AWS::...>``."""
    arn = resource_arns(resource, core)[0]
    for token, placeholder in ((Aws.PARTITION, "<AWS::Partition>"), (Aws.REGION, "<AWS::Region>"),
                               (Aws.ACCOUNT_ID, "<AWS::AccountId>")):
        arn = arn.replace(token, placeholder)
    return f"Resource::{arn}"


def wildcard_reason(grant: Grant) -> str | None:
    """Why the grant's resource has a wildcard; None when it has none."""
    if not (grant.resource in (ANY_RESOURCE, BUCKET_OBJECTS) or grant.resource.endswith("*")):
        return None
    if grant.reason:
        return grant.reason
    for prefix, reason in WILDCARD_REASONS.items():
        if grant.resource.startswith(prefix):
            return reason
    raise ValueError(f"the wildcard in {grant.resource!r} needs a reason (Grant.reason)")


def policy_statement(grant: Grant, core: CoreReferences) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        actions=list(grant.actions),
        resources=resource_arns(grant.resource, core),
        conditions=grant.conditions or None,
    )
