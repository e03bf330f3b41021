"""Checkpoints: how one moves, as pure functions of its snapshot.

Initialed (uploads open) -> Active (uploads completed and verified) or Disabled
(uploads aborted). A refused request leaves the checkpoint as it was and
records the refusal, so the client can fix its ETags and try again.
"""

from __future__ import annotations

from sdmw_contracts.events.assets import (
    CheckpointChanged,
    CheckpointFile,
    CheckpointRegistrationRequested,
    Rejection,
)

Checkpoint = CheckpointChanged


def _next(checkpoint: Checkpoint, **changes: object) -> Checkpoint:
    return checkpoint.model_copy(update={**changes, "version": checkpoint.version + 1})


def with_file_completed(checkpoint: Checkpoint, filename: str, size: int) -> Checkpoint:
    """The same snapshot (no new version) with one file's upload recorded as complete."""
    files = [
        f.model_copy(update={"upload_id": None, "size": size}) if f.filename == filename else f
        for f in checkpoint.files
    ]
    return checkpoint.model_copy(update={"files": files})


def activated(checkpoint: Checkpoint) -> Checkpoint:
    return _next(checkpoint, status="Active", rejection=None)


def rejected(checkpoint: Checkpoint, request_id: str, reason: str) -> Checkpoint:
    return _next(checkpoint, rejection=Rejection(request_id=request_id, reason=reason))


def disabled(checkpoint: Checkpoint) -> Checkpoint:
    files = [f.model_copy(update={"upload_id": None}) for f in checkpoint.files]
    return _next(checkpoint, status="Disabled", files=files, rejection=None)


def tag_problems(checkpoint: Checkpoint, tagged_filenames: set[str]) -> str | None:
    """Why these tags cannot complete the checkpoint's open uploads, or None."""
    open_files = {f.filename for f in checkpoint.files if f.upload_id}
    unknown = sorted(tagged_filenames - {f.filename for f in checkpoint.files})
    missing = sorted(open_files - tagged_filenames)
    if unknown:
        return f"multi_parts_tags names files that are not part of the checkpoint: {', '.join(unknown)}"
    if missing:
        return f"multi_parts_tags has no ETags for: {', '.join(missing)}"
    return None


def split_location(s3_location: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` -> (bucket, ``prefix/``)."""
    bucket, _, prefix = s3_location.removeprefix("s3://").partition("/")
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def registered(command: CheckpointRegistrationRequested, sizes: dict[str, int], version: int) -> Checkpoint:
    """An Active checkpoint of files already in S3 (name under the prefix -> size)."""
    bucket, prefix = split_location(command.s3_location)
    return CheckpointChanged(
        id=command.checkpoint_id,
        version=version,
        checkpoint_type=command.checkpoint_type,
        status="Active",
        s3_location=f"s3://{bucket}/{prefix}",
        files=[CheckpointFile.under(bucket, prefix, name, size=size) for name, size in sorted(sizes.items())],
        params=command.params,
        created_at=command.requested_at,
    )
