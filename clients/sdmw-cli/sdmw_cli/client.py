"""A thin SDK over the middleware's HTTP API: one method per route the CLI uses."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

MIB = 1024 * 1024
#: The header of a list answer that has more pages: send it back as ``next_token``.
NEXT_TOKEN_HEADER = "x-next-token"
DEFAULT_PART_MIB = 64
PART_TRIES = 3
#: Requests that change something: each carries an ``Idempotency-Key`` of its own, so that sending it again
#: is safe whether or not the first try was carried out.
CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Answers that mean "not carried out, or not known to be": the API's 503 (AWS unreachable), API Gateway's
#: 502/504 (the function failed or ran out of time). The same request is sent again after them.
RETRIED_STATUSES = frozenset({502, 503, 504})
SEND_TRIES = 3


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
        for field in ("detail", "message", "errorMessage", "error"):
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
        return self._body(self._send(method, route, **kwargs))

    def _send(self, method: str, route: str, **kwargs: Any) -> httpx.Response:
        """The answer to one request, sent again (the same request, under the same ``Idempotency-Key``)
        after no answer or an answer saying it was not carried out, at most :data:`SEND_TRIES` times."""
        url = f"{self.base_url}/{route.lstrip('/')}"
        headers = {"x-api-key": self.api_key, "Accept": "application/json"}
        if method in CHANGING:
            # One key per call: if the first try was carried out and its answer lost, the API answers the
            # retry with that first answer instead of creating a second job.
            headers["Idempotency-Key"] = str(uuid.uuid4())
        for attempt in range(1, SEND_TRIES + 1):
            try:
                response = self.http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as error:
                failure = UnreachableError(f"cannot reach {self.base_url}: {error}")
            except httpx.InvalidURL as error:
                raise UnreachableError(f"{self.base_url!r} is not a usable URL: {error}") from error
            else:
                if response.status_code not in RETRIED_STATUSES or attempt == SEND_TRIES:
                    raise_for_answer(response)
                    return response
            if attempt < SEND_TRIES:
                time.sleep(self.retry_pause_s * 2 ** (attempt - 1))
        raise failure

    def _body(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code,
                f"the answer to {response.request.method} {response.request.url} is not JSON: "
                f"is {self.base_url} the API's URL?",
            ) from None

    def every_page(self, route: str, listed: str | None = None) -> Any:
        """A list route's answer with the items of every page: its pages are followed (``x-next-token``)
        to the end. ``listed`` names the list in an answer that is an object; None: the answer is a list."""
        answer: Any = None
        items: list[Any] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            response = self._send("GET", route, params={"next_token": token} if token else None)
            body = self._body(response)
            answer = body if answer is None else answer
            items.extend(body[listed] if listed else body)
            token = response.headers.get(NEXT_TOKEN_HEADER)
            if not token or token in seen:
                break
            seen.add(token)
        if not listed:
            return items
        return {**{key: value for key, value in answer.items() if key != "next_token"}, listed: items}

    # ---------------------------------------------------------------- checkpoints

    def create_checkpoint(self, checkpoint_type: str, parts: dict[str, int], params: dict[str, Any]) -> Any:
        filenames = [{"filename": name, "parts_number": count} for name, count in parts.items()]
        body = {"checkpoint_type": checkpoint_type, "filenames": filenames, "params": params}
        return self.request("POST", "/checkpoint", json=body)

    def activate_checkpoint(self, checkpoint_id: str, tags: dict[str, list[dict[str, Any]]]) -> Any:
        body = {"checkpoint_id": checkpoint_id, "status": "Active", "multi_parts_tags": tags}
        return self.request("PUT", "/checkpoint", json=body)

    def list_checkpoints(self) -> Any:
        return self.every_page("/checkpoints", "checkpoints")

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
        return self.every_page("/inference/list-endpoint-deployment-jobs")

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

    def list_inference_jobs(self) -> list[dict[str, Any]]:
        return self.every_page("/inference/list-inference-jobs")

    # ---------------------------------------------------------------- uploads to presigned URLs

    def put_object(self, url: str, data: bytes) -> None:
        """One PUT of a whole file to its presigned URL; retried with back-off like a part."""
        for attempt in range(1, PART_TRIES + 1):
            try:
                response = self.storage.put(url, content=data)
                if response.status_code < 400:
                    return
                failure: Exception = ApiError(response.status_code, response.text.strip() or "upload failed")
            except httpx.TransportError as error:
                failure = UnreachableError(f"upload failed: {error}")
            if attempt < PART_TRIES:
                time.sleep(self.retry_pause_s * 2 ** (attempt - 1))
        raise failure

    # ---------------------------------------------------------------- datasets

    def create_dataset(self, name: str, content: list[dict[str, str]], params: dict[str, Any]) -> Any:
        return self.request("POST", "/dataset", json={"dataset_name": name, "content": content, "params": params})

    def set_dataset_status(self, name: str, status: str) -> Any:
        return self.request("PUT", "/dataset", json={"dataset_name": name, "status": status})

    def list_datasets(self) -> Any:
        return self.every_page("/datasets", "datasets")

    def upload_dataset(
        self,
        name: str,
        files: Iterable[LocalFile],
        *,
        params: dict[str, Any] | None = None,
        workers: int = 4,
        on_bytes: Callable[[int], None] = lambda sent: None,
    ) -> Any:
        """The seed's flow: ``POST /dataset``, one presigned PUT per file, then ``PUT /dataset`` Enabled."""
        files = list(files)
        content = [{"filename": f.name, "name": f.name, "type": item_type(f.name)} for f in files]
        created = self.create_dataset(name, content, params or {})
        urls = presigned_urls(created)

        def send(file: LocalFile) -> None:
            data = file.path.read_bytes()
            self.put_object(urls[file.name], data)
            on_bytes(len(data))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(send, files))
        return self.set_dataset_status(name, "Enabled")

    # ---------------------------------------------------------------- models and training

    def list_models(self) -> Any:
        return self.every_page("/models", "models")

    def create_model(self, name: str, ckpt_path: str, checkpoint_id: str | None = None) -> Any:
        body: dict[str, Any] = {
            "model_type": "Stable-diffusion",
            "name": name,
            "params": {"create_model_params": {"new_model_name": name, "ckpt_path": ckpt_path}},
        }
        if checkpoint_id:
            body["checkpoint_id"] = checkpoint_id
        return self.request("POST", "/model", json=body)

    def set_model_status(self, model_id: str, status: str) -> Any:
        return self.request("PUT", "/model", json={"model_id": model_id, "status": status, "multi_parts_tags": {}})

    def model(self, model_id: str) -> dict[str, Any]:
        """The API has no route for one model: it is found in ``GET /models``."""
        for model in self.list_models()["models"]:
            if model["id"] == model_id:
                return model
        raise ApiError(404, f"no model {model_id}")

    def create_train_job(self, body: dict[str, Any]) -> Any:
        return self.request("POST", "/train", json=body)

    def set_train_job_status(self, job_id: str, status: str) -> Any:
        return self.request("PUT", "/train", json={"train_job_id": job_id, "status": status})

    def list_train_jobs(self) -> Any:
        return self.every_page("/trains", "trainJobs")

    def train_job(self, job_id: str) -> dict[str, Any]:
        """The API has no route for one training job: it is found in ``GET /trains``."""
        for job in self.list_train_jobs()["trainJobs"]:
            if job["id"] == job_id:
                return job
        raise ApiError(404, f"no training job {job_id}")

    def checkpoint(self, checkpoint_id: str) -> dict[str, Any]:
        """The API has no route for one checkpoint: it is found in ``GET /checkpoints``."""
        for checkpoint in self.list_checkpoints()["checkpoints"]:
            if checkpoint["id"] == checkpoint_id:
                return checkpoint
        raise ApiError(404, f"no checkpoint {checkpoint_id}")

    # ---------------------------------------------------------------- stopping, deleting, logs

    def cancel_inference(self, job_id: str) -> Any:
        return self.request("POST", f"/inference/{_segment(job_id)}/cancel")

    def delete_inference(self, job_id: str) -> Any:
        return self.request("DELETE", f"/inference/{_segment(job_id)}")

    def cancel_train_job(self, job_id: str) -> Any:
        return self.request("POST", f"/trains/{_segment(job_id)}/cancel")

    def delete_train_job(self, job_id: str) -> Any:
        return self.request("DELETE", f"/trains/{_segment(job_id)}")

    def job_logs(self, job_id: str, next_token: str | None = None) -> Any:
        """One page of a job's log lines (inference or training); ``next_token`` continues after it."""
        params = {"next_token": next_token} if next_token else None
        return self.request("GET", f"/jobs/{_segment(job_id)}/logs", params=params)

    def delete_checkpoint(self, checkpoint_id: str) -> Any:
        return self.request("DELETE", f"/checkpoints/{_segment(checkpoint_id)}")

    def import_checkpoint(self, checkpoint_type: str, url: str, filename: str | None, params: dict[str, Any]) -> Any:
        body: dict[str, Any] = {"checkpoint_type": checkpoint_type, "url": url, "params": params}
        if filename:
            body["filename"] = filename
        return self.request("POST", "/checkpoints/import", json=body)

    def rename_checkpoint(self, checkpoint_id: str, name: str) -> Any:
        return self.request("PUT", f"/checkpoints/{_segment(checkpoint_id)}/name", json={"name": name})

    def delete_dataset(self, name: str) -> Any:
        return self.request("DELETE", f"/datasets/{_segment(name)}")

    def delete_model(self, model_id: str) -> Any:
        return self.request("DELETE", f"/models/{_segment(model_id)}")

    def forget_endpoint_job(self, job_id: str) -> Any:
        return self.request("DELETE", f"/inference/endpoint-deployment-jobs/{_segment(job_id)}")

    # ---------------------------------------------------------------- webhooks

    def create_webhook(
        self, url: str, event_types: list[str], *, terminal_only: bool = False, description: str = ""
    ) -> Any:
        body = {"url": url, "event_types": event_types, "terminal_only": terminal_only, "description": description}
        return self.request("POST", "/webhooks", json=body)

    def list_webhooks(self) -> Any:
        return self.every_page("/webhooks", "webhooks")

    def webhook(self, webhook_id: str) -> Any:
        return self.request("GET", f"/webhooks/{quote(webhook_id, safe='')}")

    def delete_webhook(self, webhook_id: str) -> Any:
        return self.request("DELETE", f"/webhooks/{quote(webhook_id, safe='')}")

    def default_webhook_secret(self) -> Any:
        return self.request("GET", "/webhooks/default/secret")


def _segment(value: str) -> str:
    """``value`` as one path segment: an id or name with a slash in it cannot reach another route."""
    return quote(value, safe="")


#: A dataset item's ``type`` by file extension; other files are typed by their extension.
ITEM_TYPES = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"), "image"),
    ".txt": "text",
    ".caption": "text",
}


def item_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return ITEM_TYPES.get(suffix, suffix.lstrip(".") or "file")


def presigned_urls(answer: dict[str, Any]) -> dict[str, str]:
    """``s3PresignUrl`` as ``{file: URL}``: one object, or the seed's list of one-key objects."""
    urls = answer["s3PresignUrl"]
    if isinstance(urls, dict):
        return urls
    return {name: url for entry in urls for name, url in entry.items()}
