"""What DreamBooth and LoRA training share: data, model loading, class images, the loop; the task decides
what is trained and what is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from sd_runtime.training.checkpoint import load_folder, load_single_file, locate_model, save_pipeline
from sd_runtime.training.contract import MLPaths, TrainingError, log, log_written
from sd_runtime.training.data import ImageLoader, TrainingData
from sd_runtime.training.dbconfig import epochs_to_steps
from sd_runtime.training.inputs import gather
from sd_runtime.training.loop import (
    Models,
    Precision,
    precision_for,
    prediction_type,
    run_loop,
    seed_everything,
    training_device,
)
from sd_runtime.training.options import TrainOptions
from sd_runtime.training.prior import generate_missing
from sd_runtime.training.reporting import TrainingProgress
from sdmw_contracts.training import MODEL_CHANNEL


class Task(Protocol):
    name: str

    def place(self, models: Models, options: TrainOptions, precision: Precision) -> None:
        """Move the models to the device in the dtypes this task trains them in (before class images)."""

    def trainable(
        self, models: Models, options: TrainOptions
    ) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        """Make the trained parts trainable; the UNet's and the text encoder's trained parameters."""

    def save(self, models: Models, options: TrainOptions, source: Path, target: Path) -> None:
        """Write the result into ``target`` (``/opt/ml/model``)."""


def fine_tune(task: Task, options: TrainOptions, paths: MLPaths, scratch: Path, reports: TrainingProgress) -> None:
    if not options.train_unet and not options.train_text_encoder:
        raise TrainingError(
            "nothing to train: the db_config's train_unet is false and the text encoder is not trained "
            "(train_text_encoder, or the db_config's stop_text_encoder above 0)"
        )
    device = training_device()
    log(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else device.type}")
    precision = precision_for(options, device)
    if options.tf32 and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed = seed_everything(options.seed)

    gathered = gather(options, paths, scratch)
    max_steps = options.max_train_steps
    if options.num_train_epochs is not None:
        max_steps = epochs_to_steps(
            options.num_train_epochs,
            len(gathered.instances),
            options.train_batch_size,
            options.gradient_accumulation_steps,
        )
        log(
            f"num_train_epochs={options.num_train_epochs} over {len(gathered.instances)} instance images at batch "
            f"size {options.train_batch_size}: {max_steps} steps"
        )

    source = locate_model(paths.channel(MODEL_CHANNEL), scratch)
    if source.kind == "file":
        pipe = load_single_file(source.path, options.extract_ema)
        folder = scratch / "converted-model"
        save_pipeline(pipe, folder)
        log(f"converted {source.path.name} to a diffusers folder")
    else:
        folder = source.path
        pipe = load_folder(folder)
    log(f"loaded {source.describe()}")
    from diffusers import DDPMScheduler

    models = Models(
        unet=pipe.unet,
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
    )
    log(
        f"noise: DDPM, {models.noise_scheduler.config.num_train_timesteps} timesteps, "
        f"prediction_type {prediction_type(models)}"
    )
    task.place(models, options, precision)
    generate_missing(
        gathered.concepts,
        models,
        pipe.scheduler,
        precision,
        options.resolution,
        options.class_batch_size,
        seed,
        scratch,
    )
    unet_parameters, text_parameters = task.trainable(models, options)
    count = sum(p.numel() for p in unet_parameters + text_parameters)
    log(
        f"{task.name}: training {count / 1e6:.2f}M parameters "
        f"({'UNet' if unet_parameters else ''}{' + ' if unet_parameters and text_parameters else ''}"
        f"{'text encoder' if text_parameters else ''}) for {max_steps} steps, batch size "
        f"{options.train_batch_size} x {options.gradient_accumulation_steps} accumulation, "
        f"learning rate {options.learning_rate:g}, {options.resolution}x{options.resolution}"
        + (f", prior preservation (weight {options.prior_loss_weight:g})" if options.with_prior_preservation else "")
    )
    data = TrainingData(
        gathered.instances,
        gathered.class_examples if options.with_prior_preservation else [],
        models.tokenizer,
        ImageLoader(options.resolution, options.center_crop, options.hflip),
        options.train_batch_size,
        seed,
        options.shuffle_tags,
    )
    run_loop(
        models,
        data.batches(),
        options,
        precision,
        unet_parameters,
        text_parameters,
        max_steps,
        reports=reports,
        batches_per_epoch=data.batches_per_epoch,
    )
    task.save(models, options, folder, paths.model)
    log_written(paths.model)
    reports.checkpoint_saved(f"{options.model_name}.safetensors")


def requires_grad(module: Any, flag: bool) -> None:
    module.requires_grad_(flag)
    module.train(flag)


def checkpoint_text_encoder(encoder: Any) -> None:
    """Gradient (activation) checkpointing for the text encoder, non-reentrant so frozen inputs still work."""
    enable = getattr(encoder, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
