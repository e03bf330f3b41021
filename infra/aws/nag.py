"""cdk-nag's AwsSolutions rules over every stack, and each finding accepted with its reason.

A violation that is not acknowledged here fails ``cdk synth`` (cdk-nag v3 runs
as a CDK policy-validation plugin). Acknowledgements name the exact finding
(``Rule[Finding]``) wherever cdk-nag reports one, so a new wildcard or managed
policy still fails the check.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def check(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions-{rule}", reason=reason))
