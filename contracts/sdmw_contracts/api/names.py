"""Checks for the names clients send that end up in S3 keys or table keys.

A name that becomes part of an object key must not be able to leave the
prefix it is put under, so ``..``, a leading ``/``, backslashes, empty
segments and control characters are refused. Used as ``Annotated`` types so
the error points at the offending field (or list item, or dict key).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

#: S3 keys are at most 1,024 bytes of UTF-8, and a name is put under a prefix, so names are bounded in
#: UTF-8 bytes (a character is 1-4 of them), not in characters. The prefixes a name is put under:
#:
#: - ``checkpoint/<type>/<checkpoint id>/<name>``: 11 + 16 ("Stable-diffusion", the longest type) + 1
#:   + 36 (a UUID) + 1 = 65 bytes;
#: - ``model/<model id>/input/<name>`` and ``train/<train job id>/input/<name>``: 6 + 36 + 7 = 49 bytes;
#: - ``out/<job id>/result/<name>.safetensors`` (a merged checkpoint): 4 + 36 + 8 + 12 = 60 bytes;
#: - ``dataset/<dataset name>/<name>``: 8 + 128 (the longest dataset name, ASCII) + 1 = 137 bytes.
#:
#: The longest is 137 bytes, so a name may have 1,024 - 137 = 887 bytes and every key stays within S3's
#: 1,024. A key a client names whole (the presigned upload's ``key``) is held to the same 887.
S3_KEY_MAX_BYTES = 1024
LONGEST_NAME_PREFIX_BYTES = len("dataset/") + 128 + len("/")
MAX_OBJECT_NAME_BYTES = S3_KEY_MAX_BYTES - LONGEST_NAME_PREFIX_BYTES
#: The most characters a name can have (all ASCII): what the OpenAPI document can state as maxLength.
MAX_OBJECT_NAME_LENGTH = MAX_OBJECT_NAME_BYTES
#: A path on the client's machine is kept (in the tables), not made a key: bounded as a key would be.
MAX_CLIENT_PATH_BYTES = S3_KEY_MAX_BYTES
#: Dataset and model names: they are table keys and key prefixes.
RESOURCE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def utf8_size(value: str) -> int:
    """How many bytes ``value`` has in UTF-8 (a lone surrogate, refused elsewhere, counts as its escape)."""
    return len(value.encode("utf-8", "backslashreplace"))


def check_utf8_size(value: str, limit: int) -> None:
    """Refuse ``value`` if it has more than ``limit`` bytes in UTF-8, saying how many it has."""
    if len(value) > limit or (not value.isascii() and utf8_size(value) > limit):
        raise ValueError(f"must be at most {limit} bytes in UTF-8; this one is {utf8_size(value)}")


def check_object_name(value: str) -> str:
    """A relative object name such as ``v1-5-pruned-emaonly.safetensors`` or ``sub/model.ckpt``."""
    if not value:
        raise ValueError("must not be empty")
    check_utf8_size(value, MAX_OBJECT_NAME_BYTES)
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError(f"{value!r} must not contain control characters")
    if "\\" in value:
        raise ValueError(f"{value!r} must not contain backslashes")
    if value.startswith("/"):
        raise ValueError(f"{value!r} must not start with '/'")
    if ".." in value:
        raise ValueError(f"{value!r} must not contain '..'")
    if any(segment in ("", ".") for segment in value.split("/")):
        raise ValueError(f"{value!r} must not have empty or '.' path segments")
    return value


def check_resource_name(value: str) -> str:
    """1-128 letters, digits, ``-``, ``_`` or ``.``; never ``.`` or anything with ``..``."""
    if not RESOURCE_NAME_PATTERN.fullmatch(value):
        raise ValueError("must be 1-128 characters, each a letter, digit, '-', '_' or '.'")
    if value == "." or ".." in value:
        raise ValueError(f"{value!r} must not be '.' or contain '..'")
    return value


#: Dataset names: as resource names, and inner spaces too (the WebUI extension's users type "my cats").
DATASET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]([A-Za-z0-9._ -]{0,126}[A-Za-z0-9._-])?$")


def check_dataset_name(value: str) -> str:
    """1-128 letters, digits, ``-``, ``_``, ``.`` or inner spaces; never ``.`` or anything with ``..``.

    The name is an S3 key prefix (``dataset/<name>/``), a table key (the dataset's id, and its
    items' ids ``<name>/<item>``) and a path segment (``/dataset/<name>/data``), so it cannot
    hold ``/``, a backslash or a control character, or escape its prefix. A space is harmless in
    all three (presigned URLs and the client's path carry it as ``%20``), so the WebUI
    extension's users can name a dataset ``my cats``. Leading and trailing spaces are refused,
    not stripped: they are invisible in every list, would make ``"cats "`` and ``"cats"`` two
    datasets, and stripping would store a name other than the one the client then asks for.
    """
    if not DATASET_NAME_PATTERN.fullmatch(value):
        raise ValueError(
            "must be 1-128 characters, each a letter, digit, '-', '_', '.' or an inner space (not first or last)"
        )
    if value == "." or ".." in value:
        raise ValueError(f"{value!r} must not be '.' or contain '..'")
    return value


def check_client_path(value: str) -> str:
    """A path on the client's machine: kept as sent, only emptiness and control characters are refused."""
    if not value:
        raise ValueError("must not be empty")
    check_utf8_size(value, MAX_CLIENT_PATH_BYTES)
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError(f"{value!r} must not contain control characters")
    return value


def check_base64(value: str) -> str:
    """Base64 data, optionally as a ``data:<type>;base64,`` URL; line breaks are allowed."""
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    payload = "".join(payload.split())
    if not payload:
        raise ValueError("must be base64-encoded data, got an empty string")
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64-encoded data") from None
    return value


def duplicates(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, in first-seen order."""
    return [value for value, count in Counter(values).items() if count > 1]


def check_unique(values: Iterable[str], what: str) -> None:
    repeated = duplicates(values)
    if repeated:
        raise ValueError(f"duplicate {what}: {', '.join(repeated)}")


#: What the OpenAPI document shows of each rule (the checks above are what is enforced; ``..`` and empty
#: segments, which a regular expression would need look-arounds for, are in the descriptions).
OBJECT_NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_OBJECT_NAME_LENGTH,
    "pattern": r"^[^/\\\x00-\x1f\x7f][^\\\x00-\x1f\x7f]*$",
    "description": "A relative object name: no leading '/', no backslash, no control character, "
    f"no '..', no empty or '.' path segment; at most {MAX_OBJECT_NAME_BYTES} bytes in UTF-8 (so that, under "
    "its prefix, it makes an S3 key of at most 1,024 bytes).",
}
RESOURCE_NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": RESOURCE_NAME_PATTERN.pattern,
    "description": "1-128 letters, digits, '-', '_' or '.'; not '.', no '..'.",
}
DATASET_NAME_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": DATASET_NAME_PATTERN.pattern,
    "description": "1-128 letters, digits, '-', '_', '.' or inner spaces; not '.', no '..'.",
}
CLIENT_PATH_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_CLIENT_PATH_BYTES,
    "pattern": r"^[^\x00-\x1f\x7f]+$",
    "description": f"A path on the client's machine, kept as sent; no control character; at most "
    f"{MAX_CLIENT_PATH_BYTES} bytes in UTF-8.",
}
BASE64_SCHEMA = {"type": "string", "minLength": 1, "description": "Base64 data, or a data: URL of it."}

ObjectName = Annotated[str, AfterValidator(check_object_name), WithJsonSchema(OBJECT_NAME_SCHEMA)]
ResourceName = Annotated[str, AfterValidator(check_resource_name), WithJsonSchema(RESOURCE_NAME_SCHEMA)]
DatasetName = Annotated[str, AfterValidator(check_dataset_name), WithJsonSchema(DATASET_NAME_SCHEMA)]
ClientPath = Annotated[str, AfterValidator(check_client_path), WithJsonSchema(CLIENT_PATH_SCHEMA)]
Base64Data = Annotated[str, AfterValidator(check_base64), WithJsonSchema(BASE64_SCHEMA)]
