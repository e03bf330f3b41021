"""Training images: finding them, captioning them, unpacking tars safely, and batching them.

Images are found recursively (png, jpg, jpeg, webp, bmp). An image's caption
is ``<stem>.txt`` beside it; without one, the concept's prompt is used. A
prompt holding the DreamBooth extension's ``[filewords]`` gets the caption
(or, without a caption, the words of the file name) in its place.

Each image is resized so that its shorter side is the resolution, then
cropped to a square (centre, or a random place for each step) and
optionally flipped; resized images are kept in memory for the next epoch.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sd_runtime import archives
from sd_runtime.training.contract import TrainingError, log

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FILEWORDS = "[filewords]"
#: Resized images kept in memory between epochs (about 0.8 MB each at 512x512).
IMAGE_CACHE_LIMIT = 1024


def safe_extract(archive: Path, target: Path) -> Path:
    """Unpack a tar (plain or compressed) into ``target``, refusing absolute paths, ``..``, members that would
    leave it and sizes the disk cannot take; links and special files are skipped (``sd_runtime.archives``)."""
    try:
        return archives.safe_extract(archive, target, outside_links="skip", note=log)
    except archives.ArchiveError as error:
        raise TrainingError(error.message) from None


def find_images(folder: Path) -> list[Path]:
    """Images under ``folder``, recursively, in a stable order (hidden files and macOS metadata skipped)."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).parts
        if any(part.startswith(".") or part == "__MACOSX" for part in relative):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
    return sorted(found)


def caption_of(image: Path) -> str | None:
    """The text of ``<stem>.txt`` beside the image, or None (also for an empty file)."""
    text_file = image.with_suffix(".txt")
    if not text_file.is_file():
        return None
    text = " ".join(text_file.read_text(encoding="utf-8", errors="replace").split())
    return text or None


def filename_words(image: Path) -> str:
    """The extension's caption for an image without a .txt: its name, less counters and punctuation."""
    words = re.sub(r"\(\d+\)|[_\-.]+|\d+$", " ", image.stem)
    return " ".join(words.split())


def prompt_for(image: Path, template: str, instance_token: str = "", class_token: str = "") -> str:
    """The caption an image trains with: its .txt, else ``template`` (with ``[filewords]`` filled in)."""
    caption = caption_of(image)
    if FILEWORDS in template:
        words = caption if caption is not None else filename_words(image)
        if class_token and instance_token and class_token in words and instance_token not in words:
            words = words.replace(class_token, f"{instance_token} {class_token}", 1)
        return " ".join(template.replace(FILEWORDS, words).split()).strip(" ,")
    if caption is not None:
        return caption
    return template.strip()


@dataclass(frozen=True)
class Example:
    image: Path
    prompt: str


def examples(
    images: list[Path], template: str, what: str, setting: str, instance_token: str = "", class_token: str = ""
) -> list[Example]:
    """Each image with its prompt; every image must have one (``setting`` names the prompt to set)."""
    result = [Example(image, prompt_for(image, template, instance_token, class_token)) for image in images]
    missing = [e.image.name for e in result if not e.prompt]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise TrainingError(
            f"{len(missing)} {what} image(s) have no prompt ({shown}): put a caption in <image name>.txt beside "
            f"each, or set {setting}"
        )
    return result


class ImageLoader:
    """Pixels for training: shorter side resized to ``resolution``, a square crop, an optional flip, in [-1, 1]."""

    def __init__(self, resolution: int, center_crop: bool, hflip: bool) -> None:
        self.resolution = resolution
        self.center_crop = center_crop
        self.hflip = hflip
        self._cache: dict[Path, Any] = {}

    def resized(self, path: Path) -> Any:
        from PIL import Image, ImageOps

        cached = self._cache.get(path)
        if cached is not None:
            return cached
        try:
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened).convert("RGB")
        except (OSError, ValueError) as error:
            raise TrainingError(f"image {path.name} cannot be read: {error}") from None
        scale = self.resolution / min(image.size)
        size = (max(self.resolution, round(image.width * scale)), max(self.resolution, round(image.height * scale)))
        if size != image.size:
            image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
        if len(self._cache) < IMAGE_CACHE_LIMIT:
            self._cache[path] = image
        return image

    def load(self, path: Path, rng: random.Random) -> Any:
        import numpy as np
        import torch

        image = self.resized(path)
        spare_x, spare_y = image.width - self.resolution, image.height - self.resolution
        if self.center_crop:
            left, top = spare_x // 2, spare_y // 2
        else:
            left, top = rng.randint(0, spare_x), rng.randint(0, spare_y)
        pixels = np.asarray(image, dtype=np.float32)[top : top + self.resolution, left : left + self.resolution]
        if self.hflip and rng.random() < 0.5:
            pixels = pixels[:, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
        return tensor / 127.5 - 1.0


class TrainingData:
    """Batches as diffusers' DreamBooth script makes them: instance examples, and with prior
    preservation as many class examples after them; an epoch is max(instances, class images) examples."""

    def __init__(
        self,
        instances: list[Example],
        class_examples: list[Example],
        tokenizer: Any,
        loader: ImageLoader,
        batch_size: int,
        seed: int,
        shuffle_tags: bool = False,
    ) -> None:
        if not instances:
            raise TrainingError("there are no instance images to train on")
        self.instances = instances
        self.class_examples = class_examples
        self.tokenizer = tokenizer
        self.loader = loader
        self.batch_size = batch_size
        self.rng = random.Random(seed)
        self.shuffle_tags = shuffle_tags
        self._tokens: dict[str, Any] = {}

    @property
    def epoch_length(self) -> int:
        return max(len(self.instances), len(self.class_examples))

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.epoch_length / self.batch_size)

    def shuffled(self, prompt: str) -> str:
        """The prompt with its comma-separated tags after the first in a random order (the extension's shuffle_tags)."""
        first, *rest = [tag.strip() for tag in prompt.split(",")]
        self.rng.shuffle(rest)
        return ", ".join([first, *rest])

    def tokens(self, prompt: str) -> Any:
        if self.shuffle_tags and "," in prompt:
            prompt = self.shuffled(prompt)
        ids = self._tokens.get(prompt)
        if ids is None:
            ids = self.tokenizer(
                prompt,
                padding="max_length",
                truncation=True,
                max_length=self.tokenizer.model_max_length,
                return_tensors="pt",
            ).input_ids[0]
            if len(self._tokens) < IMAGE_CACHE_LIMIT * 4:
                self._tokens[prompt] = ids
        return ids

    def batches(self) -> Iterator[dict[str, Any]]:
        """Endless batches, reshuffled every epoch."""
        import torch

        while True:
            order = list(range(self.epoch_length))
            self.rng.shuffle(order)
            for start in range(0, len(order), self.batch_size):
                chosen = order[start : start + self.batch_size]
                picked = [self.instances[i % len(self.instances)] for i in chosen]
                if self.class_examples:
                    picked += [self.class_examples[i % len(self.class_examples)] for i in chosen]
                yield {
                    "pixel_values": torch.stack([self.loader.load(e.image, self.rng) for e in picked]),
                    "input_ids": torch.stack([self.tokens(e.prompt) for e in picked]),
                    "instances": len(chosen),
                }
