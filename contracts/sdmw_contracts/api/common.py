"""Shapes shared by several routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """Base of request models: unknown fields are ignored, as the seed did."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(BaseModel):
    """The 422 body of the seed API."""

    detail: list[ValidationErrorItem]


class ErrorResponse(BaseModel):
    """The seed's error body for 4xx/5xx answers other than validation."""

    statusCode: int
    error: str


def seed_time(value: datetime | None) -> str | None:
    """The seed's time format: ``2023-07-04 08:00:35.171309`` (UTC, no zone)."""
    if value is None:
        return None
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
