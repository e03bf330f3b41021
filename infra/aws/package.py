"""The AWS deployment's build artifacts, made without Docker.

``python -m infra.aws.package [--out build/aws] [--skip-layer]`` (``make package``) builds:

- ``<out>/layer/python/``: one Lambda layer with the third-party packages the
  Lambda functions import, installed by pip as Linux wheels for the functions'
  runtime and architecture (``LAMBDA_PYTHON``, ``LAMBDA_ARCHITECTURE``). Every
  version comes from the repository's ``requirements.txt``, which also
  constrains the transitive dependencies. A stamp beside the layer records what
  it was built from; the layer is rebuilt only when that changes.
- ``<out>/functions/<service>/``: each service's code: its package,
  ``service_kit`` and ``sdmw_contracts``, ``.py`` files only, without tests and
  without the local-only entrypoints (the long-polling workers).
- ``<out>/sd-runtime-image/``: the Docker build context of the SageMaker image
  (``contracts/`` and ``services/sd-runtime/``, without tests and caches; the
  Dockerfile also at the context's root); ``cdk deploy`` builds and pushes it.

The CDK app reads the paths from ``built_packages(out)`` and the runtime from
``LAMBDA_PYTHON`` / ``LAMBDA_ARCHITECTURE``, so they are stated once, here.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements.txt"
DEFAULT_OUT = REPO / "build" / "aws"

# The Lambda functions' runtime, stated once: the CDK stacks and the layer's wheels follow it.
# python3.12 (Amazon Linux 2023), not 3.11: 3.11 runs on Amazon Linux 2, whose glibc (2.26) the pinned
# Pillow's aarch64 wheel no longer supports. The code is tested on 3.11 and uses nothing 3.12 changed.
LAMBDA_PYTHON = "3.12"
LAMBDA_ARCHITECTURE = "arm64"
#: glibc of the runtime's OS: python3.8-3.11 run on Amazon Linux 2, python3.12 and later on Amazon Linux 2023.
LAMBDA_GLIBC = {"3.11": (2, 26), "3.12": (2, 34), "3.13": (2, 34)}[LAMBDA_PYTHON]
_MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}[LAMBDA_ARCHITECTURE]
LAMBDA_ABI = "cp" + LAMBDA_PYTHON.replace(".", "")
#: The platform tag of the wheels pip installs (manylinux2014 = glibc 2.17, which every runtime has).
LAMBDA_PLATFORM = f"manylinux2014_{_MACHINE}"
#: Every tag the runtime can load: pip does not widen a ``manylinux_2_X`` tag to older glibc versions itself.
LAMBDA_PLATFORMS = (LAMBDA_PLATFORM, *(f"manylinux_2_{minor}_{_MACHINE}" for minor in range(LAMBDA_GLIBC[1], 16, -1)))
#: The suffix CPython gives extension modules built for the runtime (e.g. ``.cpython-312-aarch64-linux-gnu.so``).
LAMBDA_EXTENSION_SUFFIX = f".cpython-{LAMBDA_ABI.removeprefix('cp')}-{_MACHINE}-linux-gnu.so"

#: What the Lambda functions import beyond the standard library and the project's own packages
#: (pinned, with extras, in requirements.txt). aiobotocore and uvicorn serve only the local stack.
LAYER_REQUIREMENTS = (
    "boto3",
    "botocore",
    "pydantic",
    "pydantic-settings",  # each service's settings model (service_kit.config)
    "aws-lambda-powertools",  # [tracer,parser] from requirements.txt
    "aws-xray-sdk",
    "fastapi",
    "starlette",
    "mangum",
    "Pillow",  # inference-dispatcher turns the runtime's images into JPEGs
    "httpx",  # webhooks: deliveries
)

#: The project's packages every function carries, beside its service's own package.
SHARED_PACKAGES = {
    "service_kit": REPO / "services" / "service-kit" / "service_kit",
    "sdmw_contracts": REPO / "contracts" / "sdmw_contracts",
}
#: Modules that only the local stack runs (long-polling workers on aiobotocore); relative to a function's root.
LOCAL_ONLY = ("service_kit/worker.py", "*/entrypoints/worker.py", "*/entrypoints/projector_worker.py")
_TEST_DIRS = {"tests", "test"}
_TEST_FILES = ("test_*.py", "*_test.py", "conftest.py")
_NEVER_COPIED = ("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".pytest_cache", ".ruff_cache", ".mypy_cache")

IMAGE_SOURCES = ("contracts", "services/sd-runtime")
DOCKERFILE = REPO / "services" / "sd-runtime" / "Dockerfile"
DOCKERIGNORE = DOCKERFILE.with_name("Dockerfile.dockerignore")

_STAMP_VERSION = 1


class PackagingError(RuntimeError):
    """The artifacts cannot be built as asked (a name not pinned, no wheel for the runtime, ...)."""


@dataclass(frozen=True)
class Packages:
    """Where the built artifacts are (the CDK app's inputs)."""

    #: The layer's root (it holds ``python/``), given to ``lambda.Code.from_asset``.
    layer_dir: Path
    #: Service name (``api-gateway``, ...) -> the code directory of its functions.
    function_dirs: dict[str, Path]
    #: The Docker build context of the sd-runtime image.
    image_context: Path


def services() -> tuple[str, ...]:
    from infra.catalog import SERVICES

    return tuple(resources.service for resources in SERVICES)


def service_package(service: str) -> Path:
    """``api-gateway`` -> ``services/api-gateway/api_gateway``."""
    return REPO / "services" / service / service.replace("-", "_")


def packages_at(out: Path = DEFAULT_OUT) -> Packages:
    """The paths a build into ``out`` has (or will have); checks nothing."""
    out = Path(out)
    return Packages(
        layer_dir=out / "layer",
        function_dirs={service: out / "functions" / service for service in services()},
        image_context=out / "sd-runtime-image",
    )


def built_packages(out: Path = DEFAULT_OUT) -> Packages:
    """The artifacts of an earlier ``build(out)``; fails, saying how to build them, when any is missing."""
    packages = packages_at(out)
    needed = [packages.layer_dir / "python", packages.image_context, *packages.function_dirs.values()]
    missing = [str(path) for path in needed if not path.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"not built: {', '.join(missing)}; run `make package` (python -m infra.aws.package --out {out})"
        )
    return packages


def build(out: Path = DEFAULT_OUT, layer: bool = True, requirements: Path = REQUIREMENTS) -> Packages:
    """Build everything into ``out``; ``layer=False`` leaves the layer as it is (built or not)."""
    packages = packages_at(out)
    for service, target in packages.function_dirs.items():
        build_function(service, target)
    build_image_context(packages.image_context)
    if layer:
        build_layer(packages.layer_dir, requirements)
    return packages


# The layer


def pins(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """Canonical name -> ``name[extras]==version`` for each ``==`` pin of a requirements file."""
    pinned: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*==\s*([^\s;,]+)", line)
        if match:
            name, extras, version = match.groups()
            pinned[canonical(name)] = f"{name}{(extras or '').replace(' ', '')}=={version}"
    return pinned


def layer_requirements(requirements: Path = REQUIREMENTS, names: Iterable[str] = LAYER_REQUIREMENTS) -> list[str]:
    """The layer's requirements as pinned in ``requirements``; every one of them must be pinned there."""
    pinned = pins(requirements)
    missing = [name for name in names if canonical(name) not in pinned]
    if missing:
        raise PackagingError(f"not pinned with == in {requirements}: {', '.join(missing)}")
    return [pinned[canonical(name)] for name in names]


def constraints(requirements: Path = REQUIREMENTS) -> list[str]:
    """requirements.txt as pip constraints: the same pins without extras, which constraints may not carry."""
    return [re.sub(r"\[[^\]]*\]", "", spec) for spec in pins(requirements).values()]


def build_layer(layer_dir: Path, requirements: Path = REQUIREMENTS) -> Path:
    """Install the layer's wheels under ``layer_dir/python``, unless a stamp says it is built from the same pins."""
    layer_dir = Path(layer_dir)
    wanted = _layer_recipe(requirements)
    stamp = _stamp_of(layer_dir)
    if (layer_dir / "python").is_dir() and stamp.is_file() and _read_json(stamp) == wanted:
        return layer_dir
    layer_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = layer_dir.parent / f".{layer_dir.name}.building"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            constraints_file = Path(scratch) / "constraints.txt"
            constraints_file.write_text("\n".join(wanted["constraints"]) + "\n")
            _pip_install(wanted["requirements"], constraints_file, staging / "python")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _strip(staging / "python")
    stamp.unlink(missing_ok=True)
    shutil.rmtree(layer_dir, ignore_errors=True)
    staging.rename(layer_dir)
    stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    return layer_dir


def _layer_recipe(requirements: Path) -> dict:
    return {
        "stamp": _STAMP_VERSION,
        "python": LAMBDA_PYTHON,
        "abi": LAMBDA_ABI,
        "platforms": list(LAMBDA_PLATFORMS),
        "requirements": layer_requirements(requirements),
        "constraints": constraints(requirements),
    }


def _stamp_of(layer_dir: Path) -> Path:
    return layer_dir.parent / f"{layer_dir.name}.stamp.json"


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pip_install(specs: Sequence[str], constraints_file: Path, target: Path) -> None:
    command = [
        *(sys.executable, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--progress-bar=off"),
        *(f"--platform={platform}" for platform in LAMBDA_PLATFORMS),
        *("--implementation=cp", f"--python-version={LAMBDA_PYTHON}", f"--abi={LAMBDA_ABI}", "--only-binary=:all:"),
        *(f"--target={target}", "--no-compile", f"--constraint={constraints_file}"),
        *specs,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = "\n".join(line for line in (result.stdout + result.stderr).splitlines() if not _pip_noise(line))
        raise PackagingError(
            f"pip could not install the layer for python{LAMBDA_PYTHON} on {LAMBDA_ARCHITECTURE} "
            f"(wheels tagged {LAMBDA_PLATFORM} up to manylinux_{LAMBDA_GLIBC[0]}_{LAMBDA_GLIBC[1]}, "
            f"the runtime's glibc; no source builds). A pin with no such wheel must change in requirements.txt, "
            f"or the runtime (LAMBDA_PYTHON) must.\n{' '.join(command)}\n{said.strip()}"
        )


def _pip_noise(line: str) -> bool:
    return not line.strip() or line.lstrip().startswith(_PIP_NOISE) or "is ignored: it is neither" in line


_PIP_NOISE = ("Collecting", "Downloading", "Using cached", "Looking in", "Saved", "File was already", "Obtaining")


def _strip(site: Path) -> None:
    """Drop what Lambda never runs: console scripts and bytecode caches."""
    shutil.rmtree(site / "bin", ignore_errors=True)
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)


# The functions' code


def build_function(service: str, target: Path) -> Path:
    """Wipe ``target`` and copy into it the service's package, service_kit and sdmw_contracts (.py only)."""
    sources = {service.replace("-", "_"): service_package(service), **SHARED_PACKAGES}
    target = Path(target)
    shutil.rmtree(target, ignore_errors=True)
    for name, source in sources.items():
        if not (source / "__init__.py").is_file():
            raise PackagingError(f"{source} is not a package")
        for path in _python_files(source):
            relative = Path(name) / path.relative_to(source)
            if _local_only(relative):
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    return target


def _python_files(root: Path) -> list[Path]:
    files = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _TEST_DIRS and not _ignored(d))
        for name in sorted(names):
            if name.endswith(".py") and not any(fnmatch.fnmatch(name, pattern) for pattern in _TEST_FILES):
                files.append(Path(directory) / name)
    return files


def _local_only(relative: Path) -> bool:
    return any(fnmatch.fnmatch(relative.as_posix(), pattern) for pattern in LOCAL_ONLY)


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in _NEVER_COPIED)


# The sd-runtime image's build context


def build_image_context(target: Path) -> Path:
    """Wipe ``target`` and copy the image's sources into it, laid out as in the repository.

    The Dockerfile (and its ignore file) also go to the context's root, where ``docker build`` and the
    CDK's image asset look for them.
    """
    target = Path(target)
    shutil.rmtree(target, ignore_errors=True)
    for source in IMAGE_SOURCES:
        shutil.copytree(REPO / source, target / source, ignore=_ignore_in_context, copy_function=shutil.copyfile)
    if DOCKERFILE.is_file():
        shutil.copyfile(DOCKERFILE, target / "Dockerfile")
    if DOCKERIGNORE.is_file():
        shutil.copyfile(DOCKERIGNORE, target / ".dockerignore")
    return target


def _ignore_in_context(directory: str, names: list[str]) -> set[str]:
    return {
        name
        for name in names
        if _ignored(name)
        or (name in _TEST_DIRS and os.path.isdir(os.path.join(directory, name)))
        or any(fnmatch.fnmatch(name, pattern) for pattern in _TEST_FILES)
    }


# Helpers and the command line


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def size_mb(directory: Path) -> float:
    return sum(path.stat().st_size for path in Path(directory).rglob("*") if path.is_file()) / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.aws.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to build (default: build/aws)")
    parser.add_argument("--skip-layer", action="store_true", help="leave the layer as it is")
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        packages = build(args.out, layer=not args.skip_layer, requirements=args.requirements)
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    if (packages.layer_dir / "python").is_dir():
        print(f"layer      {packages.layer_dir} ({size_mb(packages.layer_dir):.1f} MB unzipped)")
    else:
        print(f"layer      {packages.layer_dir} (not built)")
    for service, directory in packages.function_dirs.items():
        print(f"function   {directory} ({service}, {size_mb(directory):.2f} MB)")
    dockerfile = "with" if (packages.image_context / "Dockerfile").is_file() else "WITHOUT a"
    print(f"image      {packages.image_context} ({dockerfile} Dockerfile)")
    print(f"python{LAMBDA_PYTHON} {LAMBDA_ARCHITECTURE}; built in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
