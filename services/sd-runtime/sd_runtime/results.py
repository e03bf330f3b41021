"""The job's final files, written where the seed's clients look for them (``ResultFiles``).

Each image goes to ``<prefix><name>`` as a JPEG, then the parameter file
``<prefix><parameters>`` holds ``{"parameters": ..., "info": ...}``. The
parameter file is written last, so a client that finds it finds the images too.
"""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image

from sd_runtime.errors import RequestError
from sd_runtime.models import ModelStore
from sdmw_contracts.runtime import ResultFiles
from sdmw_contracts.s3 import split_s3_uri

JPEG_QUALITY = 95


def check_results(results: ResultFiles, image_count: int, task: str) -> None:
    """Before any work: the files can be written, and the job will make as many images as they name."""
    try:
        _, key = split_s3_uri(results.prefix + results.parameters)
    except ValueError as error:
        raise RequestError(f"results.prefix: {error}") from None
    if not key.strip("/"):
        raise RequestError(f"results: {results.prefix + results.parameters!r} names no object to write")
    if len(results.images) != image_count:
        raise RequestError(f"task {task!r} makes {image_count} image(s) but results.images names {len(results.images)}")


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def write_results(
    store: ModelStore, results: ResultFiles, images: list[Image.Image], parameters: dict[str, Any], info: str
) -> list[str]:
    """Writes the images and the parameter file; the images' s3:// URIs, in order."""
    if len(images) != len(results.images):
        # A generation that went wrong must not look like a finished job with missing pictures.
        raise RuntimeError(f"the job made {len(images)} image(s) where results.images names {len(results.images)}")
    bodies = [jpeg(image) for image in images]  # all encoded before any is written
    uris = [results.prefix + name for name in results.images]
    for uri, body in zip(uris, bodies, strict=True):
        store.put_bytes(uri, body, "image/jpeg")
    document = json.dumps({"parameters": parameters, "info": info}).encode()
    store.put_bytes(results.prefix + results.parameters, document, "application/json")
    return uris
