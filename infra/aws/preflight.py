"""What ``make deploy`` checks before it hands over to ``cdk deploy``, so a deploy fails early and says why.

- AWS credentials resolve to an account (else: how to give them).
- The account and region are bootstrapped for the CDK (else: ``make bootstrap``).
- A service stack deployed alone finds the core stack deployed (else: deploy the core first). Service
  stacks find the core by name at deploy time, not through exports, so CloudFormation alone would fail
  later and less clearly (a missing SSM parameter) or, worse, succeed and point at nothing.
- The deployment's secrets exist, kept outside the stacks (``infra.aws.kept_secrets``).

    python -m infra.aws.preflight --prefix sdmw [--service endpoint-manager | --bootstrapping]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from infra.aws import kept_secrets

#: The CDK's default bootstrap qualifier, and the SSM parameter ``cdk bootstrap`` writes.
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
#: States in which a stack's resources exist and a service stack can rely on them.
DEPLOYED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"})
CORE = "core"


class NotReady(SystemExit):
    """Why the deploy cannot start, in words (exits non-zero with the message)."""


def account_of(session: Any) -> str:
    try:
        return session.client("sts").get_caller_identity()["Account"]
    except (NoCredentialsError, BotoCoreError, ClientError) as exc:
        raise NotReady(
            f"no usable AWS credentials ({exc}): configure them (aws configure, AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and AWS_REGION, then run this again"
        ) from exc


def check_bootstrapped(session: Any, account: str) -> None:
    try:
        session.client("ssm").get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise
        raise NotReady(
            f"account {account} in {session.region_name} is not bootstrapped for the CDK: run make bootstrap once"
        ) from exc


def stack_status(session: Any, stack: str) -> str | None:
    try:
        [found] = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in exc.response["Error"]["Message"]:
            return None
        raise
    return found["StackStatus"]


def check_core_deployed(session: Any, prefix: str, service: str) -> None:
    core = f"{prefix}-{CORE}"
    status = stack_status(session, core)
    if status not in DEPLOYED:
        state = "is not deployed" if status is None else f"is {status}"
        raise NotReady(
            f"{core} {state} in {session.region_name}: {prefix}-{service} needs the core's bus, bucket, topics "
            f"and image. Deploy the core first (make deploy SERVICE={CORE}, or make deploy for every stack)"
        )


def check(session: Any, prefix: str, service: str | None, bootstrapping: bool = False) -> str:
    """The account deploys go to, once every check passed (before ``cdk bootstrap``: credentials only)."""
    account = account_of(session)
    if bootstrapping:
        return account
    check_bootstrapped(session, account)
    if service and service != CORE:
        check_core_deployed(session, prefix, service)
    for name, done in kept_secrets.ensure_all(session, prefix).items():
        print(f"secret {name}: {done}")
    return account


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="sdmw")
    parser.add_argument("--service", default=None, help="the one stack being deployed (a service, or core)")
    parser.add_argument("--bootstrapping", action="store_true", help="before cdk bootstrap: credentials only")
    args = parser.parse_args(argv)
    # The CDK's command line reads AWS_REGION too; boto3 reads only AWS_DEFAULT_REGION and profiles.
    session = boto3.Session(region_name=os.environ.get("AWS_REGION") or None)
    if not session.region_name:
        raise NotReady("no AWS region: set AWS_REGION (or a region in your AWS profile), then run this again")
    account = check(session, args.prefix, args.service, args.bootstrapping)
    print(f"{'bootstrapping' if args.bootstrapping else 'deploying to'} account {account} in {session.region_name}")


if __name__ == "__main__":
    main()
