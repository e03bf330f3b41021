"""What the AWS deployment's tests share: one synth of the whole CDK app per session, and template helpers.

The synth needs the Lambda packages (``make package``; CI runs it before the
tests). Without them the fixture fails with ``built_packages``' message: it is
not skipped, so a CI that forgot to package fails loudly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PREFIX = "sdmw"


@dataclass(frozen=True)
class Synth:
    """A synthesized cloud assembly: its directory and each stack's template as written to disk."""

    outdir: Path
    templates: dict[str, dict[str, Any]]
    #: Stack name -> the names of the other artifacts it depends on.
    dependencies: dict[str, list[str]]


def synth(outdir: Path, context: dict[str, Any] | None = None, extra: Any = None) -> Synth:
    """Synthesize the app as ``cdk synth`` does (cdk-nag included); ``extra(app)`` may add to it first."""
    import aws_cdk as cdk

    from infra.aws.app import build_app
    from infra.aws.package import built_packages

    app = cdk.App(outdir=str(outdir), context=context or {})
    build_app(app, built_packages())
    if extra is not None:
        extra(app)
    assembly = app.synth()
    return Synth(
        outdir=Path(outdir),
        templates={
            stack.stack_name: json.loads((Path(outdir) / stack.template_file).read_text()) for stack in assembly.stacks
        },
        dependencies={stack.stack_name: [d.id for d in stack.dependencies] for stack in assembly.stacks},
    )


@pytest.fixture(scope="session")
def full_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The whole app (core and every service stack), synthesized once."""
    return synth(tmp_path_factory.mktemp("cdk-out"))


def stack_name(part: str) -> str:
    return f"{PREFIX}-{part}"


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> Properties of every resource of one type."""
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template.get("Resources", {}).items()
        if resource["Type"] == resource_type
    }


def render(value: Any) -> Any:
    """A CloudFormation value as a readable string: ``{"Ref": "AWS::Region"}`` -> ``${AWS::Region}``,
    ``{"Fn::GetAtt": [id, attr]}`` -> ``${id.attr}``, ``{"Ref": id}`` -> ``${id}``, joins joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [render(item) for item in value]
    if isinstance(value, dict) and len(value) == 1:
        [(function, argument)] = value.items()
        if function == "Ref":
            return f"${{{argument}}}"
        if function == "Fn::GetAtt":
            return f"${{{argument[0]}.{argument[1]}}}"
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(render(part) for part in parts)
        if function == "Fn::Sub" and isinstance(argument, str):
            return argument
    raise AssertionError(f"no rendering for {value!r}")


def ref_id(value: Any) -> str:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` names."""
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    raise AssertionError(f"{value!r} names no resource of the template")
