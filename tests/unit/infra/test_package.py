"""The Lambda code directories and the image's build context that ``infra.aws.package`` makes."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from infra.aws import package
from infra.catalog import SERVICES
from tests.conftest import SERVICE_ENVIRONMENT

SHARED = {"service_kit", "sdmw_contracts"}
SERVICE_PACKAGES = {resources.service: resources.service.replace("-", "_") for resources in SERVICES}
HANDLERS = [(resources.service, function.handler) for resources in SERVICES for function in resources.functions]

#: What each bootstrap reads at import; nothing answers at AWS_ENDPOINT_URL, so any AWS call would fail.
LAMBDA_ENVIRONMENT = {
    **SERVICE_ENVIRONMENT,
    "API_KEY": "test-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}

IMPORT_PROBE = """
import importlib, importlib.util, json, sys
module = importlib.import_module(sys.argv[1])
from service_kit import aws
print(json.dumps({
    "handler": callable(getattr(module, "handler", None)),
    "files": {name: sys.modules[name].__file__ for name in sys.argv[2].split(",")},
    "calls": aws.call_counts(),
    "importable_others": [name for name in sys.argv[3].split(",") if importlib.util.find_spec(name)],
    "local_only_loaded": [name for name in ("aiobotocore", "uvicorn") if name in sys.modules],
}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> package.Packages:
    """Everything but the layer, built into a directory of this module's own."""
    return package.build(tmp_path_factory.mktemp("aws"), layer=False)


def files_under(directory: Path) -> set[str]:
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}


def test_there_is_one_code_directory_per_service(built):
    assert set(built.function_dirs) == set(SERVICE_PACKAGES)
    for service, directory in built.function_dirs.items():
        assert directory.is_dir()
        assert {path.name for path in directory.iterdir()} == {SERVICE_PACKAGES[service], *SHARED}


@pytest.mark.parametrize("service", sorted(SERVICE_PACKAGES))
def test_a_code_directory_holds_python_sources_without_tests_caches_or_local_entrypoints(built, service):
    files = files_under(built.function_dirs[service])
    assert files and all(name.endswith(".py") for name in files)
    assert not any("__pycache__" in name or "/tests/" in name for name in files)
    assert not any(Path(name).name.startswith("test_") or Path(name).name == "conftest.py" for name in files)
    assert "service_kit/worker.py" not in files
    assert not any(name.endswith(("entrypoints/worker.py", "entrypoints/projector_worker.py")) for name in files)
    # Everything else of the three packages is there.
    pkg = SERVICE_PACKAGES[service]
    sources = {
        pkg: package.service_package(service),
        **package.SHARED_PACKAGES,
    }
    expected = {
        f"{name}/{path.relative_to(root).as_posix()}"
        for name, root in sources.items()
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    local_only = {"service_kit/worker.py", f"{pkg}/entrypoints/worker.py", f"{pkg}/entrypoints/projector_worker.py"}
    assert files == expected - local_only


@pytest.mark.parametrize(("service", "handler"), HANDLERS)
def test_each_declared_handler_module_is_in_its_code_directory(built, service, handler):
    module = handler.rsplit(".", 1)[0]
    assert (built.function_dirs[service] / (module.replace(".", "/") + ".py")).is_file()


def installed_closure(names) -> set[str]:
    """The layer's requirements and everything they require (pip installs the whole closure into the layer)."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:  # a requirement whose marker excludes this Python
            continue
        seen.add(name)
        for requirement in requirements:
            if "extra ==" in requirement:
                continue
            pending.append(package.canonical(re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]))
    return seen


@pytest.mark.parametrize("service", sorted(SERVICE_PACKAGES))
def test_every_third_party_import_of_a_function_comes_from_the_layer(built, service):
    directory = built.function_dirs[service]
    own = {SERVICE_PACKAGES[service], *SHARED}
    distributions = importlib.metadata.packages_distributions()
    layer = installed_closure(package.canonical(name) for name in package.LAYER_REQUIREMENTS)
    outside = {}
    for path in sorted(directory.rglob("*.py")):
        for top in imported_top_levels(path):
            if top in own or top in sys.stdlib_module_names or top == "__future__":
                continue
            providers = {package.canonical(name) for name in distributions.get(top, [top])}
            if not providers & layer:
                outside.setdefault(top, []).append(path.relative_to(directory).as_posix())
    assert not outside, f"imported but neither in the code directory nor in the layer: {outside}"


def imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(("service", "handler"), HANDLERS)
def test_a_handler_imports_from_its_code_directory_alone_without_calling_aws(built, service, handler):
    """A clean interpreter: no site (so none of the repository's editable installs), the code directory and
    the test environment's site-packages for the third-party packages only."""
    directory = built.function_dirs[service]
    module = handler.rsplit(".", 1)[0]
    own = [SERVICE_PACKAGES[service], *sorted(SHARED)]
    others = [name for name in SERVICE_PACKAGES.values() if name != SERVICE_PACKAGES[service]]
    others += ["sd_runtime", "infra", "tests"]
    environment = {
        **LAMBDA_ENVIRONMENT,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(directory), sysconfig.get_paths()["purelib"]]),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_PROBE, module, ",".join(own), ",".join(others)],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["handler"]
    for name, file in probe["files"].items():
        assert Path(file).is_relative_to(directory), f"{name} came from {file}"
    assert probe["calls"] == {}
    assert probe["importable_others"] == []
    assert probe["local_only_loaded"] == []


def test_the_image_context_holds_the_runtime_and_contracts_without_tests_or_caches(built):
    context = built.image_context
    files = files_under(context)
    assert {name.split("/")[0] for name in files} <= {"contracts", "services", "Dockerfile", ".dockerignore"}
    assert {name.split("/")[1] for name in files if name.startswith("services/")} == {"sd-runtime"}
    assert "services/sd-runtime/sd_runtime/__main__.py" in files
    assert "contracts/sdmw_contracts/__init__.py" in files
    assert "contracts/pyproject.toml" in files and "services/sd-runtime/pyproject.toml" in files
    assert not any(
        part == "__pycache__" or part == "tests" or part.endswith(".egg-info") or part.endswith(".pyc")
        for name in files
        for part in name.split("/")
    )
    if package.DOCKERFILE.is_file():
        assert (context / "Dockerfile").read_bytes() == package.DOCKERFILE.read_bytes()
        assert (context / "services/sd-runtime/Dockerfile").is_file()


def test_building_again_gives_the_same_files(built, tmp_path):
    again = package.build(tmp_path, layer=False)
    for service, directory in built.function_dirs.items():
        first, second = files_under(directory), files_under(again.function_dirs[service])
        assert first == second
        assert all((directory / n).read_bytes() == (again.function_dirs[service] / n).read_bytes() for n in first)
    assert files_under(built.image_context) == files_under(again.image_context)


def test_a_rebuild_removes_what_is_no_longer_there(tmp_path):
    packages = package.build(tmp_path, layer=False)
    stale = packages.function_dirs["asset-registry"] / "asset_registry" / "gone.py"
    stale.write_text("")
    package.build(tmp_path, layer=False)
    assert not stale.exists()


def test_built_packages_names_what_is_missing(tmp_path):
    package.build(tmp_path, layer=False)
    with pytest.raises(FileNotFoundError, match="layer"):
        package.built_packages(tmp_path)


# The layer's recipe (the layer itself: test_layer.py)


def test_the_layers_requirements_are_the_pins_of_requirements_txt():
    specs = package.layer_requirements()
    pins = package.pins()
    assert specs == [pins[package.canonical(name)] for name in package.LAYER_REQUIREMENTS]
    assert "aws-lambda-powertools[tracer,parser]==" in " ".join(specs)
    assert all("[" not in line for line in package.constraints())


def test_a_layer_requirement_that_is_not_pinned_is_refused(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("boto3==1.0\npydantic>=2\n")
    with pytest.raises(package.PackagingError, match=r"not pinned.*pydantic"):
        package.layer_requirements(requirements, ["boto3", "pydantic"])


def test_the_layer_is_not_rebuilt_while_its_stamp_matches_the_pins(tmp_path, monkeypatch):
    installs = []

    def fake_pip_install(specs, constraints_file, target):
        installs.append(list(specs))
        (target / "marker").mkdir(parents=True)

    monkeypatch.setattr(package, "_pip_install", fake_pip_install)
    layer = tmp_path / "layer"
    package.build_layer(layer)
    package.build_layer(layer)
    assert len(installs) == 1
    assert (layer / "python" / "marker").is_dir()

    requirements = tmp_path / "requirements.txt"
    requirements.write_text(package.REQUIREMENTS.read_text().replace("mangum==", "mangum==0.0.0\n# was "))
    package.build_layer(layer, requirements)
    assert len(installs) == 2
    assert "mangum==0.0.0" in installs[1]


def test_the_runtime_is_stated_once_for_the_stacks():
    assert (package.LAMBDA_PYTHON, package.LAMBDA_ARCHITECTURE) == ("3.12", "arm64")
    assert package.LAMBDA_PLATFORM == "manylinux2014_aarch64"
    assert package.LAMBDA_PLATFORMS[0] == package.LAMBDA_PLATFORM
    assert "manylinux_2_34_aarch64" in package.LAMBDA_PLATFORMS  # python3.12 runs on Amazon Linux 2023 (glibc 2.34)
    assert "manylinux_2_35_aarch64" not in package.LAMBDA_PLATFORMS
