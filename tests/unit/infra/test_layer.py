"""The Lambda layer: Linux wheels for the functions' runtime, at the versions requirements.txt pins.

It needs a built layer: ``SDMW_TEST_LAYER=1`` builds one here (pip, from the package index), otherwise the
one ``python -m infra.aws.package`` left in build/aws/layer is read (``make`` builds it before the tests).
"""

from __future__ import annotations

import os
from email.parser import HeaderParser
from pathlib import Path

import pytest

from infra.aws import package

BUILD_HERE = "SDMW_TEST_LAYER"
EM_AARCH64, EM_X86_64 = 183, 62
#: Lambda's limit on a function's code and layers together, unzipped.
LAMBDA_UNZIPPED_LIMIT_MB = 250


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get(BUILD_HERE) == "1":
        layer_dir = package.build_layer(tmp_path_factory.mktemp("aws") / "layer")
    elif (package.DEFAULT_OUT / "layer" / "python").is_dir():
        layer_dir = package.DEFAULT_OUT / "layer"
    else:
        pytest.skip(f"no layer built: run `python -m infra.aws.package`, or set {BUILD_HERE}=1 to build one here")
    return layer_dir / "python"


def distributions(site: Path) -> dict[str, tuple[str, list[str]]]:
    """Canonical name -> (version, wheel tags) of every distribution installed in the layer."""
    found = {}
    for info in site.glob("*.dist-info"):
        metadata = HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        wheel = HeaderParser().parsestr((info / "WHEEL").read_text(encoding="utf-8"))
        found[package.canonical(metadata["Name"])] = (metadata["Version"], wheel.get_all("Tag") or [])
    return found


def test_pydantic_core_is_a_linux_build_for_the_lambda_runtime(site):
    extensions = sorted((site / "pydantic_core").glob("_pydantic_core*.so"))
    assert [path.name for path in extensions] == [f"_pydantic_core{package.LAMBDA_EXTENSION_SUFFIX}"]
    assert package.LAMBDA_EXTENSION_SUFFIX == ".cpython-312-aarch64-linux-gnu.so"
    header = extensions[0].read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    machine = {"arm64": EM_AARCH64, "x86_64": EM_X86_64}[package.LAMBDA_ARCHITECTURE]
    assert int.from_bytes(header[18:20], "little") == machine


def test_every_requirement_is_in_the_layer_at_its_pinned_version(site):
    installed = distributions(site)
    for spec in package.layer_requirements():
        name, version = spec.split("==")
        name = package.canonical(name.split("[")[0])
        assert name in installed, f"{name} is not in the layer"
        assert installed[name][0] == version, f"{name} {installed[name][0]} in the layer, {version} pinned"


def test_every_wheel_in_the_layer_runs_on_the_lambda_runtime(site):
    """Pure Python, or built for the runtime's CPython and a glibc no newer than its OS's."""
    runnable = {"any", *package.LAMBDA_PLATFORMS}
    for name, (version, tags) in distributions(site).items():
        platforms = {tag.split("-")[2] for tag in tags}
        assert platforms & runnable, f"{name} {version} is built for {sorted(platforms)}"


def test_the_layer_has_no_scripts_or_bytecode_caches(site):
    assert not (site / "bin").exists()
    assert not any(site.rglob("__pycache__"))


def test_the_layer_and_the_largest_function_fit_lambdas_limit(site, tmp_path):
    largest_function = max(
        package.size_mb(package.build_function(service, tmp_path / service)) for service in package.services()
    )
    assert package.size_mb(site) + largest_function < LAMBDA_UNZIPPED_LIMIT_MB
