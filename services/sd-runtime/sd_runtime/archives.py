"""Tar archives: recognised by their content, unpacked safely, and the model file found inside.

The Stable Diffusion WebUI's AWS extension uploads every model (checkpoints,
LoRAs, embeddings, ControlNets, ...) as a *plain tar* whose S3 object is named
like the model file itself (``x.safetensors``), holding the model under
``models/<type>/<file>`` (``embeddings/<file>`` for embeddings; a checkpoint
may have its ``<stem>.yaml`` beside it). So a file is an archive when its
content says so (``is_tar``), whatever its name, and the model it carries is
``model_file_in`` the unpacked folder.

``safe_extract`` unpacks a tar (plain or compressed) refusing absolute paths,
``..``, members that would land outside the target, more members than
``MAX_MEMBERS`` and more bytes than the target's disk has free; links are
never created (those pointing outside the target are refused when asked,
otherwise skipped, as are special files).

This module imports no torch (training's hyperparameter checks stay fast).
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from sd_runtime.errors import RequestError

#: The suffixes of model files (weights) the runtime loads: safetensors, and torch's pickles.
MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
#: More members than this is no model archive (and no sane upload of training images either).
MAX_MEMBERS = 100_000
#: Kept free on the disk a tar is unpacked to.
DISK_MARGIN_BYTES = 256 * 2**20


class ArchiveError(RequestError):
    """A tar that cannot or must not be unpacked, or that holds no usable model (400)."""


def is_tar(path: Path) -> bool:
    """Whether ``path`` is a tar archive (plain, gzip, bzip2 or xz), by its content: its name does not matter."""
    try:
        return Path(path).is_file() and tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError):
        return False


def _link_target(member: tarfile.TarInfo) -> PurePosixPath:
    """Where a link member points, relative to the archive's root (a symlink is relative to its own folder)."""
    if member.issym():
        return PurePosixPath(member.name).parent / member.linkname
    return PurePosixPath(member.linkname)  # hard links name a member of the archive


def _leaves(root: Path, relative: PurePosixPath | str) -> bool:
    return not (root / str(relative)).resolve().is_relative_to(root)


def safe_extract(
    archive: Path,
    target: Path,
    *,
    outside_links: str = "skip",
    note: Callable[[str], None] | None = None,
    max_members: int = MAX_MEMBERS,
) -> Path:
    """Unpack tar ``archive`` (plain or compressed) into ``target`` and return ``target``.

    Refused (``ArchiveError``, naming the member): an absolute path or ``..``,
    a member that would land outside ``target``, more than ``max_members``
    members, more bytes than ``target``'s disk has free. Links are never
    created: a link pointing outside ``target`` is refused with
    ``outside_links="refuse"``, otherwise skipped like the links that stay
    inside and special files (``note`` is told how many were skipped).
    """
    if outside_links not in ("skip", "refuse"):
        raise ValueError(f"outside_links must be 'skip' or 'refuse', not {outside_links!r}")
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        with tarfile.open(archive) as tar:
            members: list[tarfile.TarInfo] = []
            skipped: list[str] = []
            total = 0
            for count, member in enumerate(tar, start=1):
                if count > max_members:
                    raise ArchiveError(f"{archive.name} holds more than {max_members} members; refusing to unpack it")
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts or member.name.startswith(("/", "\\")):
                    raise ArchiveError(f"{archive.name} holds an unsafe path {member.name!r}; refusing to unpack it")
                if _leaves(root, member.name):
                    raise ArchiveError(f"{archive.name} holds {member.name!r}, which would leave the folder")
                if member.issym() or member.islnk():
                    pointed = _link_target(member)
                    if outside_links == "refuse" and (
                        PurePosixPath(member.linkname).is_absolute() or _leaves(root, pointed)
                    ):
                        raise ArchiveError(
                            f"{archive.name} holds a link {member.name!r} -> {member.linkname!r} pointing outside "
                            "the archive; refusing to unpack it"
                        )
                    skipped.append(member.name)
                elif member.isfile() or member.isdir():
                    members.append(member)
                    total += member.size if member.isfile() else 0
                else:
                    skipped.append(member.name)
            free = shutil.disk_usage(root).free
            if total + DISK_MARGIN_BYTES > free:
                raise ArchiveError(
                    f"{archive.name} unpacks to {total / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB free "
                    f"where it is unpacked; refusing to unpack it"
                )
            if skipped and note is not None:
                note(f"{archive.name}: skipped {len(skipped)} link(s) or special file(s), e.g. {skipped[0]!r}")
            tar.extractall(root, members=members, filter="data")
    except (tarfile.TarError, EOFError) as error:
        raise ArchiveError(f"{archive.name} is not a readable tar archive: {error}") from None
    return target


def _visible(path: Path, root: Path) -> bool:
    """Not hidden and not macOS metadata (``._x.safetensors``, ``__MACOSX/``), which tars made on a Mac carry."""
    return not any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(root).parts)


def listing(root: Path, limit: int = 12) -> str:
    """The files under ``root`` by their paths in the archive, for messages."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    if not files:
        return "nothing"
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def model_files(root: Path) -> list[Path]:
    """The model files (``MODEL_FILE_SUFFIXES``) under ``root``, in a stable order."""
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(MODEL_FILE_SUFFIXES) and _visible(p, root)
    )


def named_files(root: Path, name: str) -> list[Path]:
    """The files under ``root`` called ``name`` (the exact name, else the name in any case)."""
    files = [p for p in root.rglob("*") if p.is_file() and _visible(p, root)]
    exact = sorted(p for p in files if p.name == name)
    return exact or sorted(p for p in files if p.name.casefold() == name.casefold())


def model_file_in(root: Path, name: str, described: str) -> Path:
    """The one model file in unpacked archive ``root``: the file called ``name`` (the archive's own name, which
    the WebUI extension gives the model inside) if there is one, else the only file with a model suffix.

    ``described`` names the archive in errors: no model file, or several and none called ``name``, is an
    ``ArchiveError`` that says what the archive holds.
    """
    named = named_files(root, name)
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise ArchiveError(
            f"{described} is a tar archive holding several files named {name} "
            f"({', '.join(p.relative_to(root).as_posix() for p in named)}); it should hold one model"
        )
    candidates = model_files(root)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ArchiveError(
            f"{described} is a tar archive holding no model file ({', '.join(MODEL_FILE_SUFFIXES)}); "
            f"it holds: {listing(root)}"
        )
    raise ArchiveError(
        f"{described} is a tar archive holding several model files and none named {name}: "
        f"{', '.join(p.relative_to(root).as_posix() for p in candidates[:12])}"
        + (f" and {len(candidates) - 12} more" if len(candidates) > 12 else "")
        + "; it should hold one model"
    )
