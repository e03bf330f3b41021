"""boto3 clients, created once per process and shared.

Endpoints come from the standard AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>
variables that boto3 reads itself; nothing here knows about emulators.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=65)


@functools.cache
def client(service_name: str) -> Any:
    return boto3.session.Session().client(service_name, config=_CLIENT_CONFIG)


@functools.cache
def resource(service_name: str) -> Any:
    return boto3.session.Session().resource(service_name, config=_CLIENT_CONFIG)
