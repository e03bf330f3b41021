"""Structured JSON logs (Powertools Logger) with the job's correlation id."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger


def get_logger(service: str) -> Logger:
    # Powertools reads POWERTOOLS_LOG_LEVEL / LOG_LEVEL itself; INFO by default.
    return Logger(service=service, level=os.environ.get("LOG_LEVEL", "INFO"))
