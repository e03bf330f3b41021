"""A thin SDK over the middleware's HTTP API: one method per route the CLI uses."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

MIB = 1024 * 1024
DEFAULT_PART_MIB = 64
PART_TRIES = 3


class ApiError(Exception):
    """The API answered, but refused the request or failed it."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"API error {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class AuthError(ApiError):
    """The key is missing or wrong (401/403)."""


class UnreachableError(Exception):
    """The API could not be reached at all (DNS, refused connection, timeout)."""


@dataclass(frozen=True)
class LocalFile:
    """A file to upload: its name as the API will know it, and where it lies here."""

    name: str
    path: Path

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def _server_message(response: httpx.Response) -> str:
    """The server's own words: FastAPI's ``detail``, the seed's ``message``, or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict):
        for field in ("detail", "message", "errorMessage"):
            if body.get(field):
                return str(body[field])
    return str(body)


def raise_for_answer(response: httpx.Response) -> None:
    if response.status_code in (401, 403):
        raise AuthError(response.status_code, _server_message(response))
    if response.status_code >= 400:
        raise ApiError(response.status_code, _server_message(response))


def parts_of(size: int, part_size: int) -> int:
    """How many parts a file of ``size`` bytes needs; an empty file still needs one."""
    return max(1, -(-size // part_size))


def files_to_upload(path: Path) -> list[LocalFile]:
    """A single file, or every file under a folder (a diffusers model) named relative to it."""
    if path.is_file():
        return [LocalFile(path.name, path)]
    found = sorted(p for p in path.rglob("*") if p.is_file())
    return [LocalFile(p.relative_to(path).as_posix(), p) for p in found]


class Client:
    """The API at ``base_url`` (its stage included, e.g. ``http://127.0.0.1:8000/prod``).

    ``http`` may be injected (a FastAPI TestClient is an httpx.Client); ``storage``
    is the client used for presigned S3 URLs, which must not carry the API key.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: httpx.Client | None = None,
        storage: httpx.Client | None = None,
        timeout_s: float = 60.0,
        retry_pause_s: float = 1.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = http or httpx.Client(timeout=timeout_s)
        self.storage = storage or httpx.Client(timeout=timeout_s)
        self.retry_pause_s = retry_pause_s

    # ---------------------------------------------------------------- plumbing

    def request(self, method: str, route: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}/{route.lstrip('/')}"
        headers = {"x-api-key": self.api_key, "Accept": "application/json"}
        try:
            response = self.http.request(method, url, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise UnreachableError(f"cannot reach {self.base_url}: {error}") from error
        raise_for_answer(response)
        return response.json() if response.content else None

    # ---------------------------------------------------------------- checkpoints

    def create_checkpoint(self, checkpoint_type: str, parts: dict[str, int], params: dict[str, Any]) -> Any:
        filenames = [{"filename": name, "parts_number": count} for name, count in parts.items()]
        body = {"checkpoint_type": checkpoint_type, "filenames": filenames, "params": params}
        return self.request("POST", "/checkpoint", json=body)

    def activate_checkpoint(self, checkpoint_id: str, tags: dict[str, list[dict[str, Any]]]) -> Any:
        body = {"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": tags}
        return self.request("PUT", "/checkpoint", json=body)

    def list_checkpoints(self) -> Any:
        return self.request("GET", "/checkpoints")

    def put_part(self, url: str, data: bytes) -> str:
        """PUTs one part to its presigned URL and answers its ETag; retried with back-off."""
        for attempt in range(1, PART_TRIES + 1):
            try:
                response = self.storage.put(url, content=data)
                if response.status_code < 400 and "ETag" in response.headers:
                    return response.headers["ETag"]
                failure: Exception = ApiError(response.status_code, response.text.strip() or "part upload failed")
            except httpx.TransportError as error:
                failure = UnreachableError(f"part upload failed: {error}")
            if attempt < PART_TRIES:
                time.sleep(self.retry_pause_s * 2 ** (attempt - 1))
        raise failure

    def upload_checkpoint(
        self,
        files: Iterable[LocalFile],
        checkpoint_type: str,
        *,
        params: dict[str, Any] | None = None,
        part_size: int = DEFAULT_PART_MIB * MIB,
        workers: int = 4,
        on_bytes: Callable[[int], None] = lambda sent: None,
    ) -> Any:
        """The seed's flow: create, PUT every part in parallel, then activate with the ETags."""
        files = list(files)
        parts = {f.name: parts_of(f.size, part_size) for f in files}
        created = self.create_checkpoint(checkpoint_type, parts, params or {})
        checkpoint_id = created["checkpoint"]["id"]
        urls = created["s3PresignUrl"]

        def send(file: LocalFile, number: int) -> dict[str, Any]:
            with file.path.open("rb") as handle:
                handle.seek((number - 1) * part_size)
                data = handle.read(part_size)
            etag = self.put_part(urls[file.name][number - 1], data)
            on_bytes(len(data))
            return {"ETag": etag, "PartNumber": number}

        jobs = [(f, n) for f in files for n in range(1, parts[f.name] + 1)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            tagged = list(pool.map(lambda job: (job[0].name, send(*job)), jobs))
        tags: dict[str, list[dict[str, Any]]] = {f.name: [] for f in files}
        for name, tag in tagged:
            tags[name].append(tag)
        return self.activate_checkpoint(checkpoint_id, tags)

    # ---------------------------------------------------------------- endpoints

    def list_endpoints(self) -> Any:
        return self.request("GET", "/inference/list-endpoint-deployment-jobs")

    def deploy_endpoint(self, instance_type: str, count: int, name: str | None = None) -> Any:
        body: dict[str, Any] = {"instance_type": instance_type, "initial_instance_count": count}
        if name:
            body["endpoint_name"] = name
        return self.request("POST", "/inference/deploy-sagemaker-endpoint", json=body)

    def endpoint_job(self, job_id: str) -> Any:
        return self.request("GET", "/inference/get-endpoint-deployment-job", params={"jobID": job_id})

    def delete_endpoints(self, names: list[str]) -> Any:
        return self.request("POST", "/inference/delete-sagemaker-endpoint", json={"delete_endpoint_list": names})

    # ---------------------------------------------------------------- inference

    def infer(self, body: dict[str, Any]) -> Any:
        return self.request("POST", "/inference-api/inference", json=body)

    def inference_job(self, job_id: str) -> Any:
        return self.request("GET", "/inference/get-inference-job", params={"jobID": job_id})

    def image_urls(self, job_id: str) -> list[str]:
        return self.request("GET", "/inference/get-inference-job-image-output", params={"jobID": job_id})

    def param_urls(self, job_id: str) -> list[str]:
        return self.request("GET", "/inference/get-inference-job-param-output", params={"jobID": job_id})

    def download(self, url: str, target: Path) -> Path:
        try:
            response = self.storage.get(url)
        except httpx.TransportError as error:
            raise UnreachableError(f"download failed: {error}") from error
        raise_for_answer(response)
        target.write_bytes(response.content)
        return target
