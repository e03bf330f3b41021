"""Export the JSON Schema of every event's ``detail`` into contracts/schemas.

    python -m contracts.export_schemas          # rewrite the files
    python -m contracts.export_schemas --check  # fail if any file is stale

Subscribers outside this codebase validate against these files, so they are
checked in and a test fails when a model changes without them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, create_model

from sdmw_contracts.envelope import Event, EventMetadata
from sdmw_contracts.events import ALL_EVENTS

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


class ClaimedData(BaseModel):
    """Empty: the data is in S3 at ``data_s3_uri`` (claim check, for events over EventBridge's 256 KB)."""

    model_config = ConfigDict(extra="forbid")


def detail_model(event: type[Event]) -> type[BaseModel]:
    """The EventBridge ``detail`` of ``event``: ``{metadata, data}``, or ``{metadata, data: {}, data_s3_uri}``."""
    return create_model(
        f"{event.detail_type()}Detail",
        metadata=(EventMetadata, ...),
        data=(event | ClaimedData, ...),
        data_s3_uri=(str | None, Field(default=None, description="Claim check: s3:// URI of the data.")),
    )


def schema_file(event: type[Event]) -> Path:
    return SCHEMA_DIR / f"{event.detail_type()}.v{event.event_version}.json"


def rendered(event: type[Event]) -> str:
    schema = detail_model(event).model_json_schema()
    schema["$id"] = f"sdmw/{event.detail_type()}/v{event.event_version}"
    schema["x-detail-type"] = event.detail_type()
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def stale_files() -> list[Path]:
    expected = {schema_file(event): rendered(event) for event in ALL_EVENTS.values()}
    stale = [path for path, text in expected.items() if not path.exists() or path.read_text() != text]
    stale += [path for path in SCHEMA_DIR.glob("*.json") if path not in expected]
    return stale


def write_all() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    expected = {schema_file(event): rendered(event) for event in ALL_EVENTS.values()}
    for path in SCHEMA_DIR.glob("*.json"):
        if path not in expected:
            path.unlink()
    for path, text in expected.items():
        path.write_text(text)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_files()
        if stale:
            names = ", ".join(p.name for p in stale)
            print(f"event schemas are stale ({names}); run `make schemas`", file=sys.stderr)
            return 1
        print(f"event schemas are up to date ({len(ALL_EVENTS)} events)")
        return 0
    write_all()
    print(f"wrote {len(ALL_EVENTS)} schemas to {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
