"""The SageMaker image (services/sd-runtime/Dockerfile), checked without Docker.

The Dockerfile is parsed here and compared with what it must agree with: the
requirements files' pins, the packaged build context, SageMaker's container
contract and ``sd_runtime`` itself. Its entry point script is written by the
Dockerfile's own RUN instruction (into a temporary folder) and run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx
import pytest

from sd_runtime.__main__ import main
from sd_runtime.serve import DEFAULT_PORT
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]
RUNTIME = REPO / "services" / "sd-runtime"
DOCKERFILE = RUNTIME / "Dockerfile"
DOCKERIGNORE = RUNTIME / "Dockerfile.dockerignore"
#: What the packaged build context (build/aws/sd-runtime-image/) holds, laid out as in the repository.
CONTEXT_ROOTS = ("contracts", "services/sd-runtime")
#: What the runtime uses from the repository's requirements.txt, which the image cannot see.
REPOSITORY_PACKAGES = ("boto3", "botocore", "starlette", "uvicorn", "pydantic", "pillow")


# --- a small Dockerfile parser ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    index: int
    keyword: str
    value: str


@dataclass(frozen=True)
class PipInstall:
    """One ``pip install`` command of a RUN instruction, ARGs substituted."""

    instruction: int
    position: tuple[int, int]
    options: dict[str, str | None]
    targets: list[str]

    @property
    def pins(self) -> dict[str, str]:
        return dict(_pin(target) for target in self.targets if "==" in target)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pin(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    return canonical(name.split("[")[0]), version


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = _pin(line)
            pins[name] = version
    return pins


class Dockerfile:
    def __init__(self, text: str) -> None:
        self.instructions: list[Instruction] = []
        pending = ""
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("#") or (pending and not stripped) or (not pending and not stripped):
                continue  # comments (also inside a continued instruction) and blank lines
            if stripped.endswith("\\"):
                pending += line.rstrip()[:-1]
                continue
            keyword, _, value = (pending + line).strip().partition(" ")
            self.instructions.append(Instruction(len(self.instructions), keyword.upper(), value.strip()))
            pending = ""
        assert not pending, "the Dockerfile ends inside a continued instruction"

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> str:
        [instruction] = self.all(keyword)
        return instruction.value

    @staticmethod
    def pairs(value: str) -> dict[str, str]:
        """``KEY=value KEY2="v 2"`` (ENV, LABEL, ARG)."""
        return dict(token.split("=", 1) if "=" in token else (token, "") for token in shlex.split(value))

    def args(self) -> dict[str, str]:
        return {k: v for i in self.all("ARG") for k, v in self.pairs(i.value).items()}

    def env(self) -> dict[str, str]:
        return {k: v for i in self.all("ENV") for k, v in self.pairs(i.value).items()}

    def labels(self) -> dict[str, str]:
        return {k: v for i in self.all("LABEL") for k, v in self.pairs(i.value).items()}

    def expand(self, command: str) -> str:
        """A RUN's command as its shell sees it: the ARGs are in its environment."""
        args = self.args()
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), command)

    def copies(self) -> list[tuple[int, list[str], str]]:
        result = []
        for i in self.all("COPY"):
            *sources, destination = [t for t in shlex.split(i.value) if not t.startswith("--")]
            result.append((i.index, sources, destination))
        return result

    def pip_installs(self) -> list[PipInstall]:
        installs = []
        for run in self.all("RUN"):
            for n, tokens in enumerate(_commands(self.expand(run.value))):
                if tokens[:2] != ["pip", "install"]:
                    continue
                options: dict[str, str | None] = {}
                targets = []
                rest = iter(tokens[2:])
                for token in rest:
                    if token in ("-r", "--requirement", "--index-url", "-i", "--extra-index-url", "-e", "--editable"):
                        options[token] = next(rest)
                    elif token.startswith("-"):
                        options[token] = None
                    else:
                        targets.append(token)
                installs.append(PipInstall(run.index, (run.index, n), options, targets))
        return installs

    def install_of(self, package: str) -> PipInstall:
        [install] = [p for p in self.pip_installs() if canonical(package) in p.pins]
        return install


def _commands(shell: str) -> list[list[str]]:
    """A shell command line's simple commands, as words (split on ``&&``, ``;``, ``|``, ``||``)."""
    lexer = shlex.shlex(shell, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", ";", "|", "||"):
            commands.append([])
        else:
            commands[-1].append(token)
    return commands


@pytest.fixture(scope="module")
def image() -> Dockerfile:
    return Dockerfile(DOCKERFILE.read_text())


# --- dependencies ----------------------------------------------------------------------------------------------


def test_base_image_is_ubuntu_with_the_cuda_of_torchs_wheel_index(image):
    base = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-[\w-]+-ubuntu[\d.]+", image.one("FROM"))
    index = re.fullmatch(
        r"https://download\.pytorch\.org/whl/cu(\d+)", image.install_of("torch").options["--index-url"]
    )

    assert base, f"not an NVIDIA CUDA image on Ubuntu: {image.one('FROM')}"
    assert index, "torch must come from PyTorch's CUDA wheel index"
    cuda = f"{base[1]}.{base[2]}"
    assert index[1] == cuda.replace(".", ""), f"torch's wheels are built for cu{index[1]}, the base image has {cuda}"
    # The build's own check that the CUDA build survived the later installs names the same CUDA.
    runs = "\n".join(run.value for run in image.all("RUN"))
    assert re.findall(r"torch\.version\.cuda.*?startswith\('([\d.]+)'\)", runs) == [cuda]


def test_torch_is_the_pinned_version_installed_before_the_requirements(image):
    pinned = requirement_pins(RUNTIME / "requirements.txt")["torch"]
    torch = image.install_of("torch")
    [requirements] = [p for p in image.pip_installs() if "-r" in p.options]
    copied = {destination: sources for _, sources, destination in image.copies()}

    assert torch.pins == {"torch": pinned}, "the image's torch must be the version requirements.txt pins"
    assert torch.targets == [f"torch=={pinned}"], "torch alone comes from PyTorch's index"
    assert torch.position < requirements.position
    assert copied[requirements.options["-r"]] == ["services/sd-runtime/requirements.txt"]


def test_open_clip_is_installed_without_dependencies_as_make_install_does(image):
    open_clip = image.install_of("open-clip-torch")
    [requirements] = [p for p in image.pip_installs() if "-r" in p.options]
    make_install = re.findall(r"pip install .*--no-deps.* open-clip-torch==(\S+)", (REPO / "Makefile").read_text())

    assert "--no-deps" in open_clip.options
    assert open_clip.targets == [f"open-clip-torch=={v}" for v in make_install]
    assert open_clip.position > requirements.position


def test_the_repository_requirements_pins_are_the_images(image):
    repository = requirement_pins(REPO / "requirements.txt")
    runtime = requirement_pins(RUNTIME / "requirements.txt")
    dockerfile = {name: version for p in image.pip_installs() for name, version in p.pins.items()}
    installed = {**runtime, **dockerfile}

    assert [name for name in REPOSITORY_PACKAGES if name not in installed] == []
    assert {n: (v, runtime[n]) for n, v in dockerfile.items() if n in runtime and runtime[n] != v} == {}
    assert {n: (v, repository[n]) for n, v in installed.items() if n in repository and repository[n] != v} == {}


def test_the_code_is_installed_last_without_dependencies_and_not_editable(image):
    installs = image.pip_installs()
    code = installs[-1]
    code_copies = [
        (index, destination) for index, sources, destination in image.copies() if sources[0] in CONTEXT_ROOTS
    ]

    assert "--no-deps" in code.options
    assert not {"-e", "--editable"} & set(code.options)
    assert sorted(code.targets) == sorted(destination for _, destination in code_copies)
    # Dependencies before code: a code change must not reinstall torch and the rest.
    assert all(install.instruction < min(index for index, _ in code_copies) for install in installs[:-1])


def test_every_copy_source_is_in_the_packaged_context(image):
    sources = [source for _, sources, _ in image.copies() for source in sources]

    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path in the repository"
        assert any(source == root or source.startswith(f"{root}/") for root in CONTEXT_ROOTS), (
            f"COPY {source}: the packaged build context holds only {', '.join(CONTEXT_ROOTS)}"
        )


# --- SageMaker's container contract ----------------------------------------------------------------------------


def test_the_image_follows_sagemakers_container_contract(image):
    env = image.env()
    created = {path for run in image.all("RUN") if "mkdir" in run.value for path in shlex.split(run.value)}

    assert image.one("EXPOSE") == str(DEFAULT_PORT) == "8080"
    assert image.labels()["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert {"/opt/ml/model", "/opt/ml/input/config", "/opt/ml/input/data", "/opt/ml/output", "/opt/ml/code"} <= created
    assert image.one("WORKDIR")
    # serve must listen on 0.0.0.0 and on the port SageMaker gives.
    assert "SD_RUNTIME_HOST" not in env
    assert "SAGEMAKER_BIND_TO_PORT" not in env
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # /tmp is on the instance's ML storage volume; /opt/ml/model is read-only on endpoints.
    assert PurePosixPath(env["SD_RUNTIME_CACHE_DIR"]).is_relative_to("/tmp")


def test_the_entry_point_is_exec_form(image):
    value = image.one("ENTRYPOINT")

    # Shell form would run `/bin/sh -c ...` and drop the `serve`/`train` argument SageMaker passes.
    assert value.startswith("["), f"ENTRYPOINT {value}: not the exec form"
    entrypoint = json.loads(value)
    assert entrypoint and all(isinstance(part, str) for part in entrypoint)


def test_an_unknown_command_is_refused():
    assert main(["bogus"]) == 2


@pytest.fixture
def entrypoint_script(image: Dockerfile, tmp_path: Path) -> Path:
    """The entry point script, written by the Dockerfile's own RUN instruction into ``tmp_path``."""
    [target] = json.loads(image.one("ENTRYPOINT"))
    [run] = [run for run in image.all("RUN") if target in run.value]
    script = tmp_path / "sd-runtime"
    subprocess.run(["sh", "-c", run.value.replace(target, str(script))], check=True)
    return script


def _with_this_python(image: Dockerfile, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The image's environment, with this virtualenv's ``python`` first on PATH and no CUDA compat libraries."""
    env = {**os.environ, **{k: v for k, v in image.env().items() if k not in ("PATH", "VIRTUAL_ENV")}}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        CUDA_COMPAT_DIR=str(tmp_path / "no-compat"),
        SD_RUNTIME_CACHE_DIR=str(tmp_path / "cache"),
        **extra,
    )
    return env


def test_the_entry_point_runs_python_m_sd_runtime_with_sagemakers_argument(image, entrypoint_script, tmp_path):
    bogus = subprocess.run(
        [entrypoint_script, "bogus"],
        env=_with_this_python(image, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    ml = tmp_path / "ml"
    train = subprocess.run(
        [entrypoint_script, "train"],
        env=_with_this_python(image, tmp_path, SD_RUNTIME_ML_ROOT=str(ml)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert bogus.returncode == 2
    assert "usage: python -m sd_runtime serve | train" in bogus.stderr
    # `train` reaches the training job: with no hyperparameters it fails the SageMaker way.
    assert train.returncode == 1, train.stderr
    assert "hyperparameters.json is missing" in (ml / "output" / "failure").read_text()


def test_the_entry_point_serves_ping_on_the_port_sagemaker_gives(image, entrypoint_script, tmp_path):
    port = free_port()
    env = _with_this_python(image, tmp_path, SAGEMAKER_BIND_TO_PORT=str(port), SD_RUNTIME_HOST="127.0.0.1")
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen([entrypoint_script, "serve"], env=env, cwd=tmp_path, stdout=output, stderr=output)
    try:
        started = time.monotonic()
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() - started < 30, f"no /ping answer within 30 s\n{log.read_text()}"
            time.sleep(0.1)

        assert response.status_code == 200
    finally:
        server.terminate()
        server.wait(10)


COMPAT_DRIVER = "570.124.06"


@pytest.mark.parametrize(
    ("host_driver", "uses_compat"),
    [
        ("470.256.02", True),  # older branch
        ("570.86.10", True),  # older in the same branch (86 < 124 as numbers, not as text)
        (COMPAT_DRIVER, False),
        ("580.65.06", False),  # newer: the compat libraries would not work on it
        (None, False),  # no GPU: no nvidia-smi
    ],
)
def test_cuda_compat_libraries_are_used_only_on_an_older_driver(entrypoint_script, tmp_path, host_driver, uses_compat):
    compat = tmp_path / "compat"
    compat.mkdir()
    (compat / f"libcuda.so.{COMPAT_DRIVER}").touch()
    (compat / "libcuda.so.1").symlink_to(f"libcuda.so.{COMPAT_DRIVER}")
    bin_dir = tmp_path / "bin"  # only the tools the script uses, so a real nvidia-smi is never found
    bin_dir.mkdir()
    for tool in ("sed", "readlink", "sort", "head"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    stub = {"python": 'echo "$LD_LIBRARY_PATH"; echo "$@"'}
    if host_driver:
        stub["nvidia-smi"] = f'[ "$*" = "--query-gpu=driver_version --format=csv,noheader" ] && echo {host_driver}'
    for name, body in stub.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": str(bin_dir), "CUDA_COMPAT_DIR": str(compat), "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64"}

    result = subprocess.run([entrypoint_script, "serve"], env=env, capture_output=True, text=True, check=True)

    library_path, arguments = result.stdout.splitlines()
    assert arguments == "-m sd_runtime serve"
    assert library_path == (f"{compat}:/usr/local/nvidia/lib64" if uses_compat else "/usr/local/nvidia/lib64")
    assert ("CUDA compat libraries" in result.stderr) == uses_compat


# --- the build context -----------------------------------------------------------------------------------------


def dockerignore_includes(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parents = ["/".join(path.split("/")[: n + 1]) for n in range(path.count("/") + 1)]
    included = True
    for exclude, pattern in rules:
        if any(pattern.fullmatch(p) for p in parents):
            included = not exclude
    return included


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        for token in re.findall(r"\*\*/|\*\*|\*|\?|\[[^\]]*\]|[^*?\[]+", glob):
            if token == "**/":
                regex += "(?:.*/)?"
            elif token == "**":
                regex += ".*"
            elif token == "*":
                regex += "[^/]*"
            elif token == "?":
                regex += "[^/]"
            elif token.startswith("["):
                regex += token
            else:
                regex += re.escape(token)
        rules.append((exclude, re.compile(regex)))
    return rules


def _build_junk(name: str) -> bool:
    """Left behind by Python, pip, pytest and ruff in a working tree; not source."""
    return (
        name in ("__pycache__", "build", "tests")
        or name.endswith((".egg-info", ".pyc"))
        or (name.startswith(".") and name.endswith("_cache"))
    )


def test_the_dockerignore_sends_what_the_dockerfile_copies_and_nothing_else(image):
    rules = dockerignore_rules(DOCKERIGNORE.read_text())
    needed = [source for _, sources, _ in image.copies() for source in sources]
    for root in CONTEXT_ROOTS:
        needed += [
            p.relative_to(REPO).as_posix()
            for p in (REPO / root).rglob("*")
            if p.is_file() and not any(_build_junk(part) for part in p.relative_to(REPO).parts)
        ]
    not_sent = [
        ".venv/bin/python",
        "requirements.txt",
        "tests/unit/sd_runtime/test_container_image.py",
        "services/api-gateway/pyproject.toml",
        "build/aws/sd-runtime-image/Dockerfile",
        "services/sd-runtime/sd_runtime/__pycache__/serve.cpython-311.pyc",
        "services/sd-runtime/sdmw_sd_runtime.egg-info/PKG-INFO",
        "contracts/sdmw_contracts/__pycache__/runtime.cpython-311.pyc",
    ]

    assert [path for path in needed if not dockerignore_includes(path, rules)] == []
    assert [path for path in not_sent if dockerignore_includes(path, rules)] == []
