"""A1111's interrogation of an image: ``interrogate_clip`` and ``interrogate_deepbooru``.

A1111's "Interrogate CLIP" captions the image with BLIP and then appends the
artists, mediums and "flavors" CLIP ranks highest. This runtime gives BLIP's
caption only (see README, "Interrogation"). The BLIP model is the runtime's
own, named by ``SD_RUNTIME_CAPTION_MODEL`` (an s3:// prefix or a local folder
of a saved ``BlipForConditionalGeneration`` with its ``BlipProcessor``); it is
fetched with the runtime's ``ModelStore`` and kept loaded between requests.
There is no DeepBooru model, so ``interrogate_deepbooru`` is refused.

Like the rest of the runtime, everything is checked before the model is
fetched or loaded, and torch is imported by the first job, not at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from sd_runtime.errors import RequestError, UnsupportedFeature, load_errors
from sd_runtime.images import decode_image
from sd_runtime.models import ModelStore
from sd_runtime.settings import Settings
from sdmw_contracts.generation import InterrogationParams
from sdmw_contracts.runtime import InvocationRequest

CAPTION_MODEL_SETTING = "SD_RUNTIME_CAPTION_MODEL"
#: A1111's defaults for BLIP (interrogate_clip_num_beams, _min_length, _max_length).
NUM_BEAMS = 1
MIN_LENGTH = 24
MAX_LENGTH = 48


def check_interrogation(request: InvocationRequest, settings: Settings) -> tuple[Image.Image, InterrogationParams]:
    """Everything an interrogation needs, checked before any model is fetched; the decoded image and the
    parameters. The task decides the interrogator (``interrogation.model`` defaults to clip either way)."""
    if request.task == "interrogate_deepbooru":
        raise UnsupportedFeature("interrogate_deepbooru: no DeepBooru model is configured in this runtime")
    if request.interrogation is None:
        raise RequestError(f"task {request.task!r} needs 'interrogation' (the image, base64)")
    image = decode_image(request.interrogation.image, "interrogation.image")
    if not settings.caption_model:
        raise UnsupportedFeature(
            f"{request.task}: no caption model is configured in this runtime; set {CAPTION_MODEL_SETTING} "
            "to an s3:// prefix or a local folder of a saved BLIP captioning model"
        )
    return image, request.interrogation


def interrogation_parameters(params: InterrogationParams) -> dict[str, Any]:
    """The interrogation's parameters; the input image is not echoed back, as A1111 leaves it out."""
    return params.model_dump(mode="json", exclude={"image"})


class Captioner:
    """BLIP captions with the model ``settings.caption_model`` names, loaded once and kept."""

    def __init__(self, store: ModelStore, settings: Settings) -> None:
        from sd_runtime.pipelines import resolve_device

        self.store = store
        self.source = settings.caption_model
        self.device, self.dtype = resolve_device(settings)
        self._loaded: tuple[Path, Any, Any] | None = None

    def folder(self) -> Path:
        """The model's local folder: fetched (or found unchanged in the cache) when it is in S3."""
        if not self.source:
            raise UnsupportedFeature(f"no caption model is configured in this runtime; set {CAPTION_MODEL_SETTING}")
        if self.source.startswith("s3://"):
            uri = self.source if self.source.endswith("/") else self.source + "/"
            return self.store.fetch(uri, what=f"caption model ({CAPTION_MODEL_SETTING})")
        folder = Path(self.source).expanduser()
        if not folder.is_dir():
            raise RequestError(f"{CAPTION_MODEL_SETTING} {self.source!r} is neither an s3:// prefix nor a folder")
        return folder

    def _model(self, folder: Path) -> tuple[Any, Any]:
        if self._loaded is not None and self._loaded[0] == folder:
            return self._loaded[1], self._loaded[2]
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self._loaded = None
        try:
            processor = BlipProcessor.from_pretrained(folder)
            model = BlipForConditionalGeneration.from_pretrained(folder, dtype=self.dtype)
        except load_errors() as error:
            raise RequestError(
                f"the caption model {self.source} ({CAPTION_MODEL_SETTING}) cannot be loaded as a BLIP "
                f"captioning model: {type(error).__name__}: {error}"
            ) from None
        model.to(self.device).eval()
        self._loaded = (folder, model, processor)
        return model, processor

    def caption(self, image: Image.Image) -> str:
        import torch

        model, processor = self._model(self.folder())
        inputs = processor(images=image, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            tokens = model.generate(
                pixel_values=pixel_values, num_beams=NUM_BEAMS, min_length=MIN_LENGTH, max_length=MAX_LENGTH
            )
        return str(processor.decode(tokens[0], skip_special_tokens=True)).strip()
