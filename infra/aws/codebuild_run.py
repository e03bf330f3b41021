"""Build the sd-runtime image in AWS and wait for it: ``make deploy IMAGE_BUILD=codebuild`` runs this.

After the core stack is deployed with ``-c image_build=codebuild`` (see
``infra.aws.runtime_image``), the image its SSM parameter names may not exist
yet. This starts the core's CodeBuild project unless the repository already
holds that tag, prints each phase as the build passes it, and exits non-zero,
naming the build's logs, if the build fails.

    python -m infra.aws.codebuild_run --prefix sdmw
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3

from infra.aws.naming import RUNTIME_IMAGE_PARAMETER
from infra.aws.runtime_image import project_name
from infra.core import CORE

POLL_S = 15.0


def image_tag(image_uri: str) -> tuple[str, str]:
    """``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`` -> (repository, tag)."""
    repository_uri, _, tag = image_uri.rpartition(":")
    return repository_uri.split("/", 1)[1], tag


def already_pushed(ecr: Any, repository: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return False
    return True


def build(
    prefix: str,
    session: Any = None,
    poll_s: float = POLL_S,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """The image's URI once it is in the repository; raises ``SystemExit`` with why when it cannot be."""
    session = session or boto3.Session()
    ssm, ecr, codebuild = session.client("ssm"), session.client("ecr"), session.client("codebuild")
    image_uri = ssm.get_parameter(Name=CORE.parameter(prefix, RUNTIME_IMAGE_PARAMETER))["Parameter"]["Value"]
    repository, tag = image_tag(image_uri)
    if already_pushed(ecr, repository, tag):
        say(f"{image_uri} is already in the repository; nothing to build")
        return image_uri
    build_id = codebuild.start_build(projectName=project_name(prefix))["build"]["id"]
    say(f"building {image_uri} in CodeBuild ({build_id}); a CUDA image takes 15-30 minutes")
    phase = None
    while True:
        [current] = codebuild.batch_get_builds(ids=[build_id])["builds"]
        if current["currentPhase"] != phase:
            phase = current["currentPhase"]
            say(f"  {phase.lower()}")
        if current["buildStatus"] != "IN_PROGRESS":  # SUCCEEDED, FAILED, FAULT, TIMED_OUT or STOPPED
            break
        sleep(poll_s)
    if current["buildStatus"] != "SUCCEEDED":
        logs = current.get("logs", {}).get("deepLink", "the project's CloudWatch log group")
        raise SystemExit(f"the image build {build_id} ended {current['buildStatus']}; its logs: {logs}")
    say(f"pushed {image_uri}")
    return image_uri


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="sdmw")
    args = parser.parse_args(argv)
    build(args.prefix)


if __name__ == "__main__":
    sys.exit(main())
