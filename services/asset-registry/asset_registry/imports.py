"""Fetching a checkpoint file from a URL into S3, part by part, never the whole file in memory.

The URL's host is checked (``service_kit.webhook_targets``: no private, loopback or link-local address,
also after DNS) when the edge accepts the import and again here, and the connection goes to the address
that was checked, so a DNS answer that changes in between cannot send the request inside the network.
A redirect is checked the same way before it is followed.

asset-registry runs as a Lambda function of ``resources.RESOURCES`` (300 s): a download has
``ImportPolicy.time_limit_s`` (270 s by default), so it ends with a reason instead of being killed. At a
typical 50-100 MB/s between a public host and S3 that is files of about 10-25 GB; from a slow host, less.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3

from service_kit.webhook_targets import HostNotResolved, RefusedTarget, check_target

#: What an import's refusal ends with (``webhook_targets`` says the rule it applies).
IMPORT_RULE = "checkpoints are only imported from public addresses"

#: Redirects followed (each to a checked address) before the import gives up.
MAX_REDIRECTS = 5
USER_AGENT = "sdmw-asset-registry"


class ImportFailed(Exception):
    """The file cannot be imported from this URL; the message says why, for the checkpoint's ``error``."""


@dataclass(frozen=True)
class ImportPolicy:
    max_bytes: int = 20 * 2**30
    #: S3 takes parts of 5 MiB or more (but the last); 16 MiB parts carry 156 GiB in S3's 10,000.
    part_bytes: int = 16 * 2**20
    time_limit_s: float = 270
    #: Loopback hosts accepted: the local stack, so a test can serve a file from this machine. Never on AWS.
    allow_loopback: bool = False
    #: Progress is saved and published at most this often.
    progress_every_s: float = 1.0
    connect_timeout_s: float = 10
    read_timeout_s: float = 60


@dataclass(frozen=True)
class Download:
    """An answer being read: its body in chunks and the size it announced (0: not told)."""

    chunks: Iterator[bytes]
    announced_bytes: int


def open_download(url: str, policy: ImportPolicy) -> Download:
    """The body of ``url``, after checking (and following, checked) redirects; ImportFailed saying why not."""
    for _ in range(MAX_REDIRECTS + 1):
        response = _get(url, policy)
        location = response.headers.get("Location")
        if response.status in (301, 302, 303, 307, 308) and location:
            response.release_conn()
            url = urljoin(url, location)
            continue
        if response.status != 200:
            response.release_conn()
            raise ImportFailed(f"{_shown(url)} answered HTTP {response.status}, not the file")
        announced = int(response.headers.get("Content-Length") or 0)
        if announced > policy.max_bytes:
            response.release_conn()
            raise ImportFailed(_too_large(announced, policy))
        return Download(chunks=_chunks(response, policy), announced_bytes=announced)
    raise ImportFailed(f"more than {MAX_REDIRECTS} redirects")


def check_import_url(url: str, allow_loopback: bool) -> str:
    """The URL's first acceptable address; ImportFailed (the same words the edge answers 400 with) if none."""
    try:
        return str(check_target(url, allow_loopback=allow_loopback, rule=IMPORT_RULE)[0])
    except (RefusedTarget, HostNotResolved) as refused:
        raise ImportFailed(str(refused)) from None


def _get(url: str, policy: ImportPolicy) -> urllib3.BaseHTTPResponse:
    address = check_import_url(url, policy.allow_loopback)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = urllib3.Timeout(connect=policy.connect_timeout_s, read=policy.read_timeout_s)
    if parts.scheme == "https":
        # Connected to the checked address; the certificate is still checked against the host's name.
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address, port, server_hostname=host, assert_hostname=host, timeout=timeout, retries=False
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": USER_AGENT}
    try:
        return pool.urlopen("GET", path, headers=headers, redirect=False, preload_content=False)
    except urllib3.exceptions.HTTPError as error:
        raise ImportFailed(f"{_shown(url)} could not be fetched: {error}") from None


def _chunks(response: urllib3.BaseHTTPResponse, policy: ImportPolicy) -> Iterator[bytes]:
    try:
        yield from response.stream(min(policy.part_bytes, 2**20))
    except urllib3.exceptions.HTTPError as error:
        raise ImportFailed(f"the download broke off: {error}") from None
    finally:
        response.release_conn()


def _too_large(size: int, policy: ImportPolicy) -> str:
    return f"the file is {size:,} bytes, more than the {policy.max_bytes:,} bytes an import may bring"


def _shown(url: str) -> str:
    """The URL without its query (which may carry a signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def stream_parts(
    download: Download,
    policy: ImportPolicy,
    put_part: Callable[[int, bytes], None],
    on_progress: Callable[[int, float], None],
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Cut the body into parts of ``policy.part_bytes`` and hand each to ``put_part``; the bytes in all.

    ``on_progress(bytes so far, seconds so far)`` is called at most every ``progress_every_s``. ImportFailed
    once the file grows past ``max_bytes`` or the time limit passes (the caller aborts the upload).
    """
    started = last_report = clock()
    buffer, received, number = bytearray(), 0, 0
    for chunk in download.chunks:
        received += len(chunk)
        if received > policy.max_bytes:
            raise ImportFailed(_too_large(received, policy) + " (it was still coming)")
        elapsed = clock() - started
        if elapsed > policy.time_limit_s:
            raise ImportFailed(
                f"the download took more than {policy.time_limit_s:.0f} s ({received:,} bytes by then): upload "
                "a file this large with POST /checkpoint instead"
            )
        buffer += chunk
        while len(buffer) >= policy.part_bytes:
            number += 1
            put_part(number, bytes(buffer[: policy.part_bytes]))
            del buffer[: policy.part_bytes]
        if clock() - last_report >= policy.progress_every_s:
            last_report = clock()
            on_progress(received, elapsed)
    if buffer or number == 0:
        if received == 0:
            raise ImportFailed("the URL answered an empty file")
        put_part(number + 1, bytes(buffer))
    return received
