"""Checkpoints: how one moves, as pure functions of its snapshot.

Initialed (uploads open, or an import downloading) -> Active (uploads completed
and their files what the type says) or Failed (they are not: ``error`` says
why), or Disabled (uploads aborted). A refused request leaves the checkpoint as
it was and records the refusal, so the client can fix its ETags and try again.
Deleting keeps a last snapshot (``as_deleted``) that no list or name finds.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from sdmw_contracts.events.assets import (
    DIFFUSERS_INDEX,
    CheckpointChanged,
    CheckpointFile,
    CheckpointRegistrationRequested,
    Rejection,
)
from sdmw_contracts.events.progress import JobProgress

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


def activated(checkpoint: Checkpoint, architecture: str | None = None) -> Checkpoint:
    """Active; ``architecture`` (read from its tensors) recorded in its params when known."""
    params = checkpoint.params if architecture is None else {**checkpoint.params, "architecture": architecture}
    return _next(checkpoint, status="Active", rejection=None, progress=None, error="", params=params)


def failed(checkpoint: Checkpoint, error: str) -> Checkpoint:
    """Failed for good: its files are not usable as its type (or could not be fetched)."""
    files = [f.model_copy(update={"upload_id": None}) for f in checkpoint.files]
    return _next(checkpoint, status="Failed", error=error, files=files, rejection=None, progress=None)


def with_progress(checkpoint: Checkpoint, progress: JobProgress) -> Checkpoint:
    return _next(checkpoint, progress=progress)


def with_upload(checkpoint: Checkpoint, upload_id: str) -> Checkpoint:
    """An import's one file, its upload opened by this service (no new version: the next save carries it)."""
    files = [f.model_copy(update={"upload_id": upload_id}) for f in checkpoint.files]
    return checkpoint.model_copy(update={"files": files})


def rejected(checkpoint: Checkpoint, request_id: str, reason: str) -> Checkpoint:
    return _next(checkpoint, rejection=Rejection(request_id=request_id, reason=reason))


def disabled(checkpoint: Checkpoint) -> Checkpoint:
    files = [f.model_copy(update={"upload_id": None}) for f in checkpoint.files]
    return _next(checkpoint, status="Disabled", files=files, rejection=None)


def current_name(checkpoint: Checkpoint) -> str:
    """The name a client renames: a diffusers folder's ``new_model_name``, else its (first) file's name."""
    if DIFFUSERS_INDEX in checkpoint.filenames:
        return str(checkpoint.params.get("new_model_name") or "")
    return checkpoint.filenames[0] if checkpoint.filenames else ""


def rename_problem(checkpoint: Checkpoint, new_name: str) -> str | None:
    """Why ``new_name`` cannot be the checkpoint's name, or None (whether another checkpoint has it aside)."""
    if DIFFUSERS_INDEX in checkpoint.filenames:
        return None
    if len(checkpoint.files) != 1:
        return f"checkpoint {checkpoint.id} holds {len(checkpoint.files)} files: only a one-file checkpoint is renamed"
    old_suffix = PurePosixPath(checkpoint.files[0].filename).suffix.lower()
    if PurePosixPath(new_name).suffix.lower() != old_suffix:
        # The runtime reads a file's format from its name, so the name keeps the file's extension.
        return f"{new_name} must end with {old_suffix or 'no extension'}, as {checkpoint.files[0].filename} does"
    return None


def renamed(checkpoint: Checkpoint, new_name: str) -> Checkpoint:
    """Answering to ``new_name``: the file keeps its S3 key, only the name it is known by changes."""
    if DIFFUSERS_INDEX in checkpoint.filenames:
        return _next(checkpoint, params={**checkpoint.params, "new_model_name": new_name}, rejection=None)
    files = [checkpoint.files[0].model_copy(update={"filename": new_name})]
    return _next(checkpoint, files=files, rejection=None)


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
