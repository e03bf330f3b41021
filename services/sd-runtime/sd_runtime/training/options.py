"""What a training run does, after the hyperparameters and an uploaded db_config are merged.

``TrainingHyperparameters`` is the contract; ``TrainOptions`` adds what only
a DreamBooth-extension db_config can ask for (separate text-encoder rank and
learning rate, epochs, a learning-rate schedule, ...). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdmw_contracts.training import TrainingHyperparameters

#: The learning-rate schedules diffusers' ``get_scheduler`` knows.
LR_SCHEDULERS = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
)


@dataclass
class ConceptSpec:
    """One concept: where its images are, how they are captioned, and its class images for prior preservation.

    ``instance_prompt`` and ``class_prompt`` may hold the extension's
    ``[filewords]``, replaced by each image's caption.
    """

    label: str
    instance_dir: str | None  # None: the instance channel
    instance_prompt: str
    class_dir: str | None = None  # None: the class channel
    class_prompt: str = ""
    num_class_images: int = 0
    class_negative_prompt: str = ""
    class_guidance_scale: float = 7.5
    class_infer_steps: int = 30
    instance_token: str = ""
    class_token: str = ""


@dataclass
class TrainOptions:
    task: str
    model_name: str
    max_train_steps: int
    learning_rate: float
    resolution: int
    train_batch_size: int
    gradient_accumulation_steps: int
    with_prior_preservation: bool
    prior_loss_weight: float
    train_text_encoder: bool
    lora_rank: int
    lora_alpha: int | None
    seed: int | None
    mixed_precision: str
    center_crop: bool
    extract_ema: bool
    concepts: list[ConceptSpec]
    # Only a db_config sets these.
    num_train_epochs: int | None = None
    text_encoder_learning_rate: float | None = None
    text_encoder_lora_rank: int | None = None
    #: Fraction of the steps the text encoder trains for (the extension's stop_text_encoder).
    text_encoder_fraction: float = 1.0
    train_unet: bool = True
    hflip: bool = False
    #: Shuffle a caption's comma-separated tags (all but the first) each time it is used.
    shuffle_tags: bool = False
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    lr_cycles: int = 1
    lr_power: float = 1.0
    weight_decay: float = 1e-2
    offset_noise: float = 0.0
    gradient_checkpointing: bool = False
    tf32: bool = False
    class_batch_size: int = 4
    max_grad_norm: float = 1.0

    @property
    def is_lora(self) -> bool:
        return self.task == "lora"

    @property
    def unet_alpha(self) -> int:
        return self.lora_alpha or self.lora_rank

    @property
    def text_rank(self) -> int:
        return self.text_encoder_lora_rank or self.lora_rank

    @property
    def text_alpha(self) -> int:
        return self.lora_alpha or self.text_rank


def options_from_hyperparameters(hp: TrainingHyperparameters) -> TrainOptions:
    """The options as the hyperparameters alone give them: one concept, the instance and class channels."""
    concept = ConceptSpec(
        label="concept",
        instance_dir=None,
        instance_prompt=hp.instance_prompt,
        class_dir=None,
        class_prompt=hp.class_prompt,
        num_class_images=hp.num_class_images,
    )
    return TrainOptions(
        task=hp.task,
        model_name=hp.model_name,
        max_train_steps=hp.max_train_steps,
        learning_rate=hp.learning_rate,
        resolution=hp.resolution,
        train_batch_size=hp.train_batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        with_prior_preservation=hp.with_prior_preservation,
        prior_loss_weight=hp.prior_loss_weight,
        train_text_encoder=hp.train_text_encoder,
        lora_rank=hp.lora_rank,
        lora_alpha=hp.lora_alpha,
        seed=hp.seed,
        mixed_precision=hp.mixed_precision,
        center_crop=hp.center_crop,
        extract_ema=hp.extract_ema,
        concepts=[concept],
    )
