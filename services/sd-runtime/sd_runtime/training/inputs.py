"""The images a run trains on, gathered from the instance, class and upload channels, concept by concept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sd_runtime.training.contract import MLPaths, TrainingError, log
from sd_runtime.training.data import Example, caption_of, examples, find_images, safe_extract
from sd_runtime.training.dbconfig import DB_CONFIG_TAR
from sd_runtime.training.options import ConceptSpec, TrainOptions
from sdmw_contracts.training import CLASS_CHANNEL, INSTANCE_CHANNEL, UPLOAD_CHANNEL

#: The WebUI extension's tars of class images: never instance images.
CLASS_TAR_PREFIX = "class-data-"


@dataclass
class ConceptData:
    spec: ConceptSpec
    instances: list[Example]
    class_examples: list[Example] = field(default_factory=list)
    #: Class images still to generate for prior preservation.
    missing_class_images: int = 0


@dataclass
class Gathered:
    concepts: list[ConceptData]

    @property
    def instances(self) -> list[Example]:
        return [e for c in self.concepts for e in c.instances]

    @property
    def class_examples(self) -> list[Example]:
        return [e for c in self.concepts for e in c.class_examples]


def _unpacked(upload: Path | None, name: str, scratch: Path) -> Path | None:
    if upload is None or not (upload / name).is_file():
        return None
    target = scratch / "upload" / name.removesuffix(".tar")
    if not target.exists():
        safe_extract(upload / name, target)
    return target


def _plain_uploads(upload: Path | None, scratch: Path, used_uploads: set[str]) -> list[Path]:
    """Images uploaded without a db_config naming them: loose ones, and those in any other tar but class tars."""
    if upload is None:
        return []
    folders = [upload]
    for tar in sorted(upload.glob("*.tar")):
        if tar.name in used_uploads or tar.name.startswith(CLASS_TAR_PREFIX):
            continue
        folders.append(_unpacked(upload, tar.name, scratch))
        used_uploads.add(tar.name)
    used_uploads.update(path.name for path in find_images(upload))
    return [folder for folder in folders if folder is not None]


def gather(options: TrainOptions, paths: MLPaths, scratch: Path) -> Gathered:
    upload = paths.channel(UPLOAD_CHANNEL)
    class_channels = paths.channels(CLASS_CHANNEL)
    used_uploads = {DB_CONFIG_TAR}
    concepts: list[ConceptData] = []
    for spec in options.concepts:
        if spec.instance_dir is None:
            folders = [*paths.channels(INSTANCE_CHANNEL), *_plain_uploads(upload, scratch, used_uploads)]
            where, setting = "the instance channels and plain uploads", "the hyperparameter instance_prompt"
        else:
            folder, where = _unpacked(upload, spec.instance_dir, scratch), f"{spec.instance_dir} (upload channel)"
            folders = [folder] if folder is not None else []
            setting = f"instance_prompt of {spec.label} in the db_config"
            used_uploads.add(spec.instance_dir)
        images = [image for folder in folders for image in find_images(folder)]
        if not images:
            if folders or spec.instance_dir is not None:
                log(f"{spec.label}: no images in {where}")
            continue
        data = ConceptData(spec, examples(images, spec.instance_prompt, f"{spec.label}", setting))
        captioned = sum(1 for image in images if caption_of(image) is not None)
        log(f"{spec.label}: {len(images)} instance images from {where} ({captioned} captioned by a .txt)")
        if options.with_prior_preservation:
            # The class channels serve the first concept without a class-data tar of its own.
            shared = class_channels if not any(c.spec.class_dir is None for c in concepts) else []
            _gather_class_images(data, upload, shared, scratch, used_uploads)
        concepts.append(data)
    if not concepts:
        raise TrainingError(
            "there are no instance images: the instance channel (and the upload channel's data-<dir>.tar files) "
            "hold no .png, .jpg, .jpeg, .webp or .bmp images"
        )
    if class_channels and not options.with_prior_preservation:
        log("the class channel is not used: with_prior_preservation is off")
    if upload is not None:
        unused = sorted(p.name for p in upload.iterdir() if p.name not in used_uploads)
        if unused:
            log(f"upload channel files not used: {', '.join(unused)}")
    gathered = Gathered(concepts)
    if (
        options.with_prior_preservation
        and not gathered.class_examples
        and not any(c.missing_class_images for c in concepts)
    ):
        raise TrainingError(
            "with_prior_preservation is on but there are no class images: send them in the class channel, or set "
            "num_class_images (and class_prompt) to have them generated"
        )
    return gathered


def _gather_class_images(
    data: ConceptData, upload: Path | None, class_channels: list[Path], scratch: Path, used_uploads: set[str]
) -> None:
    spec = data.spec
    if spec.class_dir is None:
        folders, where = class_channels, "the class channels"
        setting = "the hyperparameter class_prompt"
    else:
        folder, where = _unpacked(upload, spec.class_dir, scratch), f"{spec.class_dir} (upload channel)"
        folders = [folder] if folder is not None else []
        setting = f"class_prompt of {spec.label} in the db_config"
        used_uploads.add(spec.class_dir)
    images = [image for folder in folders for image in find_images(folder)]
    if spec.num_class_images and len(images) > spec.num_class_images:
        images = images[: spec.num_class_images]
    data.class_examples = examples(images, spec.class_prompt, f"{spec.label} class", setting)
    data.missing_class_images = max(0, spec.num_class_images - len(images))
    log(
        f"{spec.label}: {len(images)} class images from {where}"
        + (f", {data.missing_class_images} to generate" if data.missing_class_images else "")
    )
    if data.missing_class_images and not spec.class_prompt.replace("[filewords]", "").strip():
        raise TrainingError(
            f"with_prior_preservation needs {setting} to generate the {data.missing_class_images} missing class "
            f"images of {spec.label} (num_class_images is {spec.num_class_images}, {len(images)} were sent)"
        )
