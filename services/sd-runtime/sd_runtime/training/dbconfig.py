"""The WebUI DreamBooth extension's settings (``db_config_cloud.json``) mapped onto a training run.

The WebUI's AWS extension uploads ``db_config.tar`` holding
``models/sagemaker_dreambooth/<model name>/db_config_cloud.json`` (the
DreamBooth extension's ``DreamboothConfig``), and for each concept a
``data-<dir>.tar`` of its images and a ``class-data-<dir>.tar`` of its class
images, ``<dir>`` being the concept's ``instance_data_dir`` /
``class_data_dir`` with ``/`` turned into ``-``. The ``config_params``
hyperparameter (db_config keys sent through the API) is laid over the
uploaded file.

Precedence: a hyperparameter sent with a non-default value wins; then the
db_config; then the hyperparameter's default. Every setting the db_config
holds that this runtime does not honour is named in one log line; keys that
describe the extension's local copy of the model (paths, revision counters)
are named in another. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sd_runtime.training.contract import TrainingError
from sd_runtime.training.options import LR_SCHEDULERS, ConceptSpec, TrainOptions

DB_CONFIG_TAR = "db_config.tar"
DB_CONFIG_NAMES = ("db_config_cloud.json", "db_config.json")

#: Settings mapped onto the run (see ``apply_db_config``).
HONOURED = frozenset(
    {
        "concepts_list",
        "learning_rate",
        "lora_learning_rate",
        "txt_learning_rate",
        "lora_txt_learning_rate",
        "train_batch_size",
        "gradient_accumulation_steps",
        "resolution",
        "num_train_epochs",
        "max_train_steps",
        "use_lora",
        "save_lora_for_extra_net",
        "lora_unet_rank",
        "lora_txt_rank",
        "lora_alpha",
        "prior_loss_weight",
        "with_prior_preservation",
        "mixed_precision",
        "seed",
        "train_unet",
        "stop_text_encoder",
        "train_text_encoder",
        "center_crop",
        "hflip",
        "gradient_checkpointing",
        "adamw_weight_decay",
        "weight_decay",
        "lr_scheduler",
        "lr_warmup_steps",
        "lr_cycles",
        "lr_power",
        "offset_noise",
        "tf32_enable",
        "sample_batch_size",
        "shuffle_tags",
    }
)
#: Settings that only the other task uses.
_OTHER_TASK = {
    "lora": {"learning_rate", "txt_learning_rate"},
    "dreambooth": {"lora_learning_rate", "lora_txt_learning_rate", "lora_unet_rank", "lora_txt_rank", "lora_alpha"},
}
#: Settings whose value, when it is one of these, asks for what the runtime does anyway.
SAME_AS_RUNTIME: dict[str, tuple[Any, ...]] = {
    "use_ema": (False,),
    "ema_predict": (False,),
    "infer_ema": (False,),
    "train_imagic": (False,),
    "use_lora_extended": (False,),
    "optimizer": ("Torch AdamW", "AdamW", "adamw", "torch adamw"),
    # Every choice computes exact attention; the runtime uses PyTorch's scaled_dot_product_attention.
    "attention": ("default", "sdp", "sdp_mem_eff", "flash_attention", "xformers"),
    "noise_scheduler": ("DDPM",),
    "clip_skip": (1, 0),
    "pad_tokens": (True,),
    "max_token_length": (75,),
    "cache_latents": (False,),
    "prior_loss_scale": (False,),
    "split_loss": (True,),
    "freeze_clip_normalization": (False,),
    "half_model": (False,),
    "save_safetensors": (True,),
    "deterministic": (False,),
    "strict_tokens": (False,),
    "gradient_set_to_none": (True, False),
    "train_unfrozen": (True,),
    "disable_class_matching": (False,),
    "dynamic_img_norm": (False,),
    "pretrained_vae_name_or_path": ("", None),
    "use_concepts": (False,),
    "concepts_path": ("", None),
    "save_ckpt_after": (True,),
    "save_lora_after": (True,),
    "save_ckpt_during": (False,),
    "save_lora_during": (False,),
    "save_state_after": (False,),
    "save_state_during": (False,),
    "save_ckpt_cancel": (False,),
    "save_lora_cancel": (False,),
    "save_state_cancel": (False,),
    "save_preview_every": (0,),
    "save_embedding_every": (0,),
    "epoch_pause_frequency": (0,),
    "epoch_pause_time": (0,),
    "disable_logging": (True, False),
    "sanity_prompt": ("",),
    "snapshot": ("", None),
    "use_ema_weights": (False,),
    "save_ema": (False,),
}
#: Keys that describe the extension's local copy of the model or its UI, not how to train.
BOOKKEEPING = frozenset(
    {
        "model_dir",
        "model_name",
        "model_path",
        "pretrained_model_name_or_path",
        "src",
        "shared_diffusers_path",
        "use_shared_src",
        "revision",
        "epoch",
        "lifetime_revision",
        "initial_revision",
        "has_ema",
        "v2",
        "model_type",
        "scheduler",
        "custom_model_name",
        "lora_model_name",
        "use_subdir",
        "graph_smoothing",
        "graph_age_limit",
        "graph_max_points",
    }
)
CONCEPT_HONOURED = frozenset(
    {
        "instance_data_dir",
        "class_data_dir",
        "instance_prompt",
        "class_prompt",
        "num_class_images_per",
        "num_class_images",
        "class_negative_prompt",
        "class_guidance_scale",
        "class_infer_steps",
        "instance_token",
        "class_token",
        "is_valid",
    }
)
CONCEPT_SAME_AS_RUNTIME: dict[str, tuple[Any, ...]] = {
    "n_save_sample": (0,),
    "save_sample_prompt": ("",),
    "save_sample_negative_prompt": ("",),
    "save_sample_template": ("",),
}


def tar_key(data_dir: str) -> str:
    """The ``<dir>`` of ``data-<dir>.tar``, as the WebUI's AWS extension names it."""
    return data_dir.replace("s3://", "").replace("\\", "/").replace("/", "-").strip("-")


def read_db_config(upload: Path | None, scratch: Path) -> dict[str, Any] | None:
    """The uploaded db_config (from ``db_config.tar`` or a loose ``db_config_cloud.json``), or None."""
    from sd_runtime.training.data import safe_extract

    if upload is None:
        return None
    candidates: list[Path] = []
    tar = upload / DB_CONFIG_TAR
    if tar.is_file():
        target = scratch / "db_config"
        safe_extract(tar, target)
        candidates = sorted(p for p in target.rglob("*.json") if p.name in DB_CONFIG_NAMES)
        if not candidates:
            raise TrainingError(f"{DB_CONFIG_TAR} in the upload channel holds no {' or '.join(DB_CONFIG_NAMES)}")
    else:
        candidates = [upload / name for name in DB_CONFIG_NAMES if (upload / name).is_file()]
    if not candidates:
        return None
    path = candidates[0]
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise TrainingError(f"the uploaded db_config {path.name} is not JSON: {error}") from None
    if not isinstance(config, dict):
        raise TrainingError(f"the uploaded db_config {path.name} must hold a JSON object")
    return config


@dataclass
class DbConfigResult:
    options: TrainOptions
    #: ``key=value`` of every honoured setting, for the log.
    applied: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)
    bookkeeping: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Reader:
    """Typed reads of db_config values; a value of the wrong kind fails naming its key."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def has(self, key: str) -> bool:
        return key in self.config and self.config[key] is not None and self.config[key] != ""

    def number(self, key: str, kind: type, minimum: float | None = None, maximum: float | None = None) -> Any:
        raw = self.config[key]
        value: float | int | None = None
        if not isinstance(raw, bool):
            try:
                number = float(raw)
            except (TypeError, ValueError):
                number = math.nan
            if math.isfinite(number):
                value = number if kind is float else int(number) if number.is_integer() else None
        if value is None:
            raise TrainingError(f"db_config setting {key} must be a {kind.__name__}, got {raw!r}")
        if minimum is not None and value < minimum:
            raise TrainingError(f"db_config setting {key} must be at least {minimum}, got {raw!r}")
        if maximum is not None and value > maximum:
            raise TrainingError(f"db_config setting {key} must be at most {maximum}, got {raw!r}")
        return value

    def flag(self, key: str) -> bool:
        raw = self.config[key]
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"true", "false"}:
            return raw.lower() == "true"
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        raise TrainingError(f"db_config setting {key} must be true or false, got {raw!r}")

    def text(self, key: str) -> str:
        raw = self.config.get(key)
        return "" if raw is None else str(raw)


def apply_db_config(
    options: TrainOptions, config: dict[str, Any], explicit: frozenset[str], upload_files: set[str]
) -> DbConfigResult:
    """``options`` with the db_config's settings laid over the hyperparameters' defaults."""
    db = _Reader(config)
    result = DbConfigResult(options)
    lora = options.is_lora

    overridden: set[str] = set()

    def use(option: str, value: Any, key: str) -> None:
        if option in explicit:
            overridden.add(key)
            result.notes.append(f"{option} from the hyperparameters ({getattr(options, option)}) wins over {key}")
            return
        setattr(options, option, value)

    rate_key = "lora_learning_rate" if lora else "learning_rate"
    if db.has(rate_key):
        use("learning_rate", db.number(rate_key, float, 1e-12, 1), rate_key)
    text_rate_key = "lora_txt_learning_rate" if lora else "txt_learning_rate"
    if db.has(text_rate_key):
        options.text_encoder_learning_rate = db.number(text_rate_key, float, 1e-12, 1)
    if db.has("train_batch_size"):
        use("train_batch_size", db.number("train_batch_size", int, 1, 64), "train_batch_size")
    if db.has("gradient_accumulation_steps"):
        accumulation = db.number("gradient_accumulation_steps", int, 1, 1024)
        use("gradient_accumulation_steps", accumulation, "gradient_accumulation_steps")
    if db.has("resolution"):
        resolution = db.number("resolution", int, 8, 2048)
        if resolution % 8:
            raise TrainingError(f"db_config setting resolution must be a multiple of 8, got {resolution}")
        use("resolution", resolution, "resolution")
    if db.has("max_train_steps"):
        use("max_train_steps", db.number("max_train_steps", int, 1, 100_000), "max_train_steps")
    elif db.has("num_train_epochs"):
        if "max_train_steps" in explicit:
            overridden.add("num_train_epochs")
            result.notes.append(f"max_train_steps from the hyperparameters ({options.max_train_steps}) wins")
        else:
            options.num_train_epochs = db.number("num_train_epochs", int, 1, 100_000)
    if db.has("lora_unet_rank"):
        use("lora_rank", db.number("lora_unet_rank", int, 1, 256), "lora_unet_rank")
    if db.has("lora_txt_rank"):
        options.text_encoder_lora_rank = db.number("lora_txt_rank", int, 1, 256)
    if db.has("lora_alpha"):
        use("lora_alpha", db.number("lora_alpha", int, 1), "lora_alpha")
    if db.has("prior_loss_weight"):
        use("prior_loss_weight", db.number("prior_loss_weight", float, 0), "prior_loss_weight")
    if db.has("mixed_precision"):
        precision = db.text("mixed_precision").lower()
        precision = {"fp32": "no", "none": "no", "float32": "no"}.get(precision, precision)
        if precision in ("no", "fp16", "bf16"):
            use("mixed_precision", precision, "mixed_precision")
        else:
            result.not_applied.append(f"mixed_precision={precision!r}")
    if db.has("seed"):
        seed = db.number("seed", int)
        use("seed", None if seed < 0 else seed, "seed")
    if db.has("center_crop"):
        use("center_crop", db.flag("center_crop"), "center_crop")
    if db.has("hflip"):
        options.hflip = db.flag("hflip")
    if db.has("train_unet"):
        options.train_unet = db.flag("train_unet")
    if db.has("with_prior_preservation"):
        use("with_prior_preservation", db.flag("with_prior_preservation"), "with_prior_preservation")
    if db.has("train_text_encoder"):
        use("train_text_encoder", db.flag("train_text_encoder"), "train_text_encoder")
    if db.has("stop_text_encoder"):
        fraction = db.number("stop_text_encoder", float, 0, 1)
        use("train_text_encoder", fraction > 0, "stop_text_encoder")
        if fraction > 0:
            options.text_encoder_fraction = fraction
    if db.has("gradient_checkpointing"):
        options.gradient_checkpointing = db.flag("gradient_checkpointing")
    for key in ("weight_decay", "adamw_weight_decay"):
        if db.has(key):
            options.weight_decay = db.number(key, float, 0, 1)
    if db.has("lr_scheduler"):
        name = db.text("lr_scheduler")
        if name in LR_SCHEDULERS:
            options.lr_scheduler = name
        else:
            result.not_applied.append(f"lr_scheduler={name!r}")
    if db.has("lr_warmup_steps"):
        options.lr_warmup_steps = db.number("lr_warmup_steps", int, 0)
    if db.has("lr_cycles"):
        options.lr_cycles = db.number("lr_cycles", int, 1)
    if db.has("lr_power"):
        options.lr_power = db.number("lr_power", float, 0)
    if db.has("offset_noise"):
        options.offset_noise = db.number("offset_noise", float, 0, 1)
    if db.has("tf32_enable"):
        options.tf32 = db.flag("tf32_enable")
    if db.has("shuffle_tags"):
        options.shuffle_tags = db.flag("shuffle_tags")
    if db.has("sample_batch_size"):
        options.class_batch_size = db.number("sample_batch_size", int, 1, 64)
    for key in ("use_lora", "save_lora_for_extra_net"):
        if db.has(key) and db.flag(key) != lora:
            result.not_applied.append(f"{key}={str(db.flag(key)).lower()} (the job's task, {options.task}, decides)")

    _apply_concepts(options, db, explicit, upload_files, result)

    other_task = _OTHER_TASK["lora" if lora else "dreambooth"]
    flagged = {entry.split("=")[0].split(" ")[0] for entry in result.not_applied}
    for key, value in config.items():
        if key in HONOURED:
            if key not in overridden and key not in flagged and value is not None and value != "":
                shown = f"{len(value)} concepts" if key == "concepts_list" and isinstance(value, list) else value
                result.applied.append(
                    f"{key}={shown}" + (f" (not used by {options.task})" if key in other_task else "")
                )
            continue
        if key == "save_ema" and not config.get("use_ema"):
            continue  # nothing to save without EMA
        if key in BOOKKEEPING:
            result.bookkeeping.append(key)
        elif key not in SAME_AS_RUNTIME or not _same(value, SAME_AS_RUNTIME[key]):
            result.not_applied.append(key)
    return result


def _same(value: Any, accepted: tuple[Any, ...]) -> bool:
    return any(type(value) is type(a) and value == a for a in accepted) or (
        isinstance(value, str) and any(isinstance(a, str) and value.lower() == a.lower() for a in accepted)
    )


def _apply_concepts(
    options: TrainOptions, db: _Reader, explicit: frozenset[str], upload_files: set[str], result: DbConfigResult
) -> None:
    raw = db.config.get("concepts_list")
    if raw is None:
        return
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        raise TrainingError("db_config setting concepts_list must be a list of objects")
    channel_concept = options.concepts[0]  # the instance channel, as the hyperparameters describe it
    concepts: list[ConceptSpec] = []
    fallback: ConceptSpec | None = None
    not_applied: set[str] = set()
    for index, item in enumerate(raw, start=1):
        reader = _Reader(item)
        for key, value in item.items():
            if key not in CONCEPT_HONOURED and (
                key not in CONCEPT_SAME_AS_RUNTIME or not _same(value, CONCEPT_SAME_AS_RUNTIME[key])
            ):
                not_applied.add(f"concepts_list[].{key}")
        data_dir = reader.text("instance_data_dir")
        spec = ConceptSpec(
            label=f"concept {index}" + (f" ({data_dir})" if data_dir else ""),
            instance_dir=None,
            instance_prompt=reader.text("instance_prompt"),
            class_prompt=reader.text("class_prompt"),
            num_class_images=_class_count(reader),
            class_negative_prompt=reader.text("class_negative_prompt"),
            instance_token=reader.text("instance_token"),
            class_token=reader.text("class_token"),
        )
        if reader.has("class_guidance_scale"):
            spec.class_guidance_scale = reader.number("class_guidance_scale", float, 0)
        if reader.has("class_infer_steps"):
            spec.class_infer_steps = reader.number("class_infer_steps", int, 1, 1000)
        class_dir = reader.text("class_data_dir")
        class_tar = f"class-data-{tar_key(class_dir)}.tar" if class_dir else ""
        if class_tar in upload_files:
            spec.class_dir = class_tar
        tar = f"data-{tar_key(data_dir)}.tar" if data_dir else ""
        if tar and tar in upload_files:
            spec.instance_dir = tar
            concepts.append(spec)
        elif fallback is None:
            fallback = spec
            if data_dir:
                result.notes.append(f"{spec.label}: no {tar} uploaded; its images are the instance channel's")
        else:
            result.notes.append(f"{spec.label}: no {tar or 'data tar'} uploaded and no instance channel left: skipped")
    if fallback is not None:
        # The instance channel takes the first concept without a tar, unless hyperparameters say otherwise.
        channel_concept.label = f"{fallback.label}, instance channel"
        for name, hyper in (("instance_prompt", "instance_prompt"), ("class_prompt", "class_prompt")):
            if hyper not in explicit:
                setattr(channel_concept, name, getattr(fallback, name))
        if "num_class_images" not in explicit:
            channel_concept.num_class_images = fallback.num_class_images
        for name in ("class_dir", "class_negative_prompt", "class_guidance_scale", "class_infer_steps"):
            setattr(channel_concept, name, getattr(fallback, name))
        channel_concept.instance_token, channel_concept.class_token = fallback.instance_token, fallback.class_token
    concepts.append(channel_concept)
    options.concepts = concepts
    if "with_prior_preservation" not in explicit and not db.has("with_prior_preservation"):
        from_db = [*concepts[:-1], fallback] if fallback is not None else concepts[:-1]
        options.with_prior_preservation = any(c is not None and c.num_class_images > 0 for c in from_db)
    result.not_applied.extend(sorted(not_applied))


def _class_count(reader: _Reader) -> int:
    for key in ("num_class_images_per", "num_class_images"):
        if reader.has(key):
            return reader.number(key, int, 0, 10_000)
    return 0


def epochs_to_steps(epochs: int, images: int, batch_size: int, accumulation: int) -> int:
    """The extension counts epochs over the instance images: ceil(images / batch) batches an epoch."""
    batches = math.ceil(images / batch_size)
    return max(1, min(100_000, epochs * math.ceil(batches / accumulation)))
