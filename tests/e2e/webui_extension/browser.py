"""The extension's browser JavaScript (``javascript/*.js``), replayed as a browser sends it.

Those scripts run in the WebUI's page (origin ``http://127.0.0.1:7860``) and
call the API and S3 cross-origin, so a browser adds what ``requests`` would
not: the ``Origin`` header, a CORS preflight (``OPTIONS``) before any request
that is not "simple" (a method other than GET/HEAD/POST, or a header such as
``x-api-key``), ``Content-Type: text/plain;charset=UTF-8`` for a string body
sent without one, none for a ``Blob`` (a file slice), and it hides from the
script every response header the server does not expose
(``Access-Control-Expose-Headers``) beyond the CORS-safelisted ones. A
request the CORS answers do not allow fails as it would in the page
(``CorsRefused``), before the script sees anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

ORIGIN = "http://127.0.0.1:7860"
#: Response headers a script may always read (the Fetch standard's CORS-safelisted response headers).
SAFELISTED_RESPONSE_HEADERS = {
    "cache-control",
    "content-language",
    "content-length",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
}
SIMPLE_METHODS = {"GET", "HEAD", "POST"}
SIMPLE_CONTENT_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
#: The extension's part size for uploads from the laptop (``chunkSize`` in txt2img-config.js).
LAPTOP_CHUNK_SIZE = 512 * 1024 * 1024


class CorsRefused(AssertionError):
    """The browser would not send the request, or would not let the script read the answer."""


@dataclass
class ScriptResponse:
    """A response as the page's script sees it."""

    status: int
    text: str
    _headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """``response.headers.get(name)``: None for a header the server did not expose."""
        return self._headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.text)


def _list(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def _allows_origin(response: requests.Response) -> bool:
    return response.headers.get("Access-Control-Allow-Origin") in {"*", ORIGIN}


def _non_simple_headers(headers: dict[str, str]) -> list[str]:
    names = []
    for name, value in headers.items():
        if name.lower() == "content-type" and value.split(";")[0].strip().lower() in SIMPLE_CONTENT_TYPES:
            continue
        names.append(name.lower())
    return sorted(names)


def fetch(
    method: str, url: str, headers: dict[str, str] | None = None, body: str | bytes | None = None
) -> ScriptResponse:
    """``fetch(url, {method, headers, body})`` or an ``XMLHttpRequest`` from the WebUI's page."""
    headers = dict(headers or {})
    if isinstance(body, str) and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "text/plain;charset=UTF-8"
    custom = _non_simple_headers(headers)
    if method not in SIMPLE_METHODS or custom:
        _preflight(method, url, custom)
    sent = {**headers, "Origin": ORIGIN}
    data = body.encode() if isinstance(body, str) else body
    response = requests.request(method, url, headers=sent, data=data, timeout=120)
    if not _allows_origin(response):
        raise CorsRefused(
            f"{method} {url}: the answer ({response.status_code}) has no Access-Control-Allow-Origin for {ORIGIN}"
        )
    visible = SAFELISTED_RESPONSE_HEADERS | _list(response.headers.get("Access-Control-Expose-Headers"))
    exposed = {k.lower(): v for k, v in response.headers.items() if k.lower() in visible or "*" in visible}
    return ScriptResponse(response.status_code, response.text, exposed)


def _preflight(method: str, url: str, custom_headers: list[str]) -> None:
    request_headers = {"Origin": ORIGIN, "Access-Control-Request-Method": method}
    if custom_headers:
        request_headers["Access-Control-Request-Headers"] = ",".join(custom_headers)
    answer = requests.options(url, headers=request_headers, timeout=30)
    if not (200 <= answer.status_code < 300) or not _allows_origin(answer):
        raise CorsRefused(f"preflight of {method} {url} answered {answer.status_code} {dict(answer.headers)}")
    methods = _list(answer.headers.get("Access-Control-Allow-Methods"))
    if method.lower() not in methods and "*" not in methods and method not in SIMPLE_METHODS:
        raise CorsRefused(f"preflight of {method} {url}: {method} is not among the allowed methods {methods}")
    allowed = _list(answer.headers.get("Access-Control-Allow-Headers"))
    missing = [h for h in custom_headers if h not in allowed and "*" not in allowed]
    if missing:
        raise CorsRefused(f"preflight of {method} {url}: headers {missing} are not allowed ({allowed})")


def _api_url(api_url: str) -> str:
    return api_url if api_url.endswith("/") else api_url + "/"


# ---------------------------------------------------------------- txt2img-config.js


def img2img_config_save(api_url: str, api_key: str, endpoint_value: str, init_img: str) -> list[Any]:
    """``img2img_config_save``: the img2img tab's values (the image as gradio hands it to scripts, a PNG data
    URL) put to ``config/aigc.json`` through a presigned URL; it answers the values the button's function
    then gets."""
    config = {
        "img2img_selected_tab_name": "img2img",
        "img2img_init_img": init_img,
        "img2img_sketch": "",
        "img2img_init_img_with_mask": "",
        "img2img_inpaint_color_sketch": "",
        "img2img_init_img_inpaint": "",
        "img2img_init_mask_inpaint": "",
        "img2img_selected_resize_tab": "ResizeTo",
        "txt2img_prompt": "",
        "txt2img_neg_prompt": "",
        "aws_api_gateway_url": api_url,
        "aws_api_token": api_key,
        "img2img_prompt": "",
        "img2img_neg_prompt": "",
    }
    query = urlencode({"key": "config/aigc.json"})
    presigned = fetch(
        "GET", f"{_api_url(api_url)}inference/generate-s3-presigned-url-for-uploading?{query}", {"x-api-key": api_key}
    )
    if not 200 <= presigned.status < 400:
        raise AssertionError(f"Error fetching presigned URL: {presigned.status} {presigned.text}")
    put = fetch("PUT", presigned.text.replace('"', ""), body=json.dumps(config, separators=(",", ":")))
    if not put.ok:
        raise AssertionError(f"config upload answered {put.status}: {put.text}")
    return [endpoint_value, init_img, "", "", "", "", ""]


def upload_from_laptop(api_url: str, api_key: str, group_name: str, file_name: str, data: bytes) -> dict[str, Any]:
    """ "Upload Model to S3 from Laptop" (``uploadFileToS3`` with ``uploadFileChunksWithWorker``): POST the
    checkpoint, PUT each chunk to its presigned URL (a worker each), read each part's ETag, PUT the
    checkpoint Active with them. ``group_name`` is the "Model Type" dropdown's value, as the page sends it."""
    url = _api_url(api_url) + "checkpoint"
    total = math.ceil(len(data) / LAPTOP_CHUNK_SIZE)
    payload = {
        "checkpoint_type": group_name,
        "filenames": [{"filename": file_name, "parts_number": total}],
        "params": {"message": "placeholder for chkpts upload test"},
    }
    created = fetch("POST", url, {"x-api-key": api_key}, json.dumps(payload))
    answer = created.json()
    if "s3PresignUrl" not in answer:
        raise AssertionError(f"Error getting presigned URL! POST checkpoint answered {created.status}: {answer}")
    urls = answer["s3PresignUrl"][file_name]
    parts = []
    for index in range(total):
        chunk = data[index * LAPTOP_CHUNK_SIZE : (index + 1) * LAPTOP_CHUNK_SIZE]
        put = fetch("PUT", urls[index], body=chunk)
        if not put.ok:
            raise AssertionError(f"Chunk upload failed: {put.status} {put.text}")
        parts.append({"ETag": put.header("ETag"), "PartNumber": index + 1})
    done = {"checkpoint_id": answer["checkpoint"]["id"], "status": "Active", "multi_parts_tags": {file_name: parts}}
    completed = fetch("PUT", url, {"x-api-key": api_key}, json.dumps(done))
    return {"created": answer, "parts": parts, "completed_status": completed.status, "completed": completed.text}
