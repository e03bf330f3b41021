"""Models by name, from the read model's checkpoints, by the rule every service uses
(``CheckpointChanged.model_named``)."""

from __future__ import annotations

from api_gateway.read_model import ReadModel
from sdmw_contracts.events import CheckpointChanged
from sdmw_contracts.events.assets import model_lookup_name
from sdmw_contracts.runtime import ModelRef


def find_model(read_model: ReadModel, model_type: str, title: str) -> ModelRef | None:
    """The Active checkpoint of ``model_type`` that holds the model ``title`` names, if any.

    Reads only the checkpoints indexed under that name (``CheckpointChanged.lookup_names``), not the catalogue.
    """
    for checkpoint in read_model.named(CheckpointChanged, model_lookup_name(model_type, title)):
        usable = checkpoint.status == "Active" and checkpoint.checkpoint_type == model_type
        if usable and (found := checkpoint.model_named(title)):
            return found
    return None
