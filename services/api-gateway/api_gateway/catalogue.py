"""Models by name, from the read model's checkpoints, by the rule every service uses
(``CheckpointChanged.model_named``)."""

from __future__ import annotations

from api_gateway.read_model import ReadModel
from sdmw_contracts.events import CheckpointChanged
from sdmw_contracts.events.assets import model_lookup_name
from sdmw_contracts.runtime import ModelRef, plain_model_name

#: How many of the checkpoints a name is ambiguous between a refusal names.
MAX_CANDIDATES_NAMED = 5


class AmbiguousName(Exception):
    """More than one Active checkpoint of a type answers to the name; the message names them."""


def find_model(read_model: ReadModel, model_type: str, title: str) -> ModelRef | None:
    """The one Active checkpoint of ``model_type`` that holds the model ``title`` names, if any.

    Reads only the checkpoints indexed under that name (``CheckpointChanged.lookup_names``), not the
    catalogue. A name that several Active checkpoints answer to is never resolved by chance: AmbiguousName.
    """
    found = [
        (checkpoint, model)
        for checkpoint in read_model.named(CheckpointChanged, model_lookup_name(model_type, title))
        if checkpoint.status == "Active"
        and checkpoint.checkpoint_type == model_type
        and (model := checkpoint.model_named(title))
    ]
    if len(found) > 1:
        raise AmbiguousName(_ambiguity(model_type, title, [checkpoint for checkpoint, _ in found]))
    return found[0][1] if found else None


def _ambiguity(model_type: str, title: str, checkpoints: list[CheckpointChanged]) -> str:
    ordered = sorted(checkpoints, key=lambda c: c.created_at)
    named = [f"{c.id} ({_files(c)}, created {c.created_at:%Y-%m-%d %H:%M})" for c in ordered[:MAX_CANDIDATES_NAMED]]
    more = f" and {len(ordered) - MAX_CANDIDATES_NAMED} more" if len(ordered) > MAX_CANDIDATES_NAMED else ""
    return (
        f"{plain_model_name(title)} ({model_type}) is ambiguous: {len(ordered)} Active checkpoints answer to it: "
        f"{'; '.join(named)}{more}. Disable all but one (PUT /checkpoint with status Disabled), or use a name "
        "only one of them has"
    )


def _files(checkpoint: CheckpointChanged) -> str:
    names = checkpoint.filenames
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
