"""The training loop DreamBooth and LoRA share: noise-prediction MSE on VAE latents, AdamW, a LR schedule.

As diffusers' DreamBooth scripts do it: images are encoded by the frozen VAE,
noise is added at a random timestep with a DDPMScheduler built from the
model's own scheduler config, and the UNet learns to predict the noise
(``epsilon``) or the velocity (``v_prediction``), as that config says. With
prior preservation, each batch also holds as many class images, whose loss
is added with ``prior_loss_weight``.

One step is one optimizer step (``gradient_accumulation_steps`` batches).
Gradients are clipped to norm 1. Mixed precision runs the forward passes
under ``torch.autocast`` on CUDA (fp16 with a gradient scaler, or bf16) while
the trained weights stay float32; frozen parts are cast to the half dtype.
On the CPU, training is float32 and the log says so.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from sd_runtime.training.contract import TrainingError, log
from sd_runtime.training.options import TrainOptions
from sd_runtime.training.reporting import TrainingProgress

PREDICTION_TYPES = ("epsilon", "v_prediction")
#: At most this many step lines in the log (plus the first and the last).
MAX_LOG_LINES = 500


@dataclass
class Models:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any


@dataclass
class Precision:
    device: torch.device
    #: The dtype of autocast, or None for float32 training.
    autocast: torch.dtype | None
    #: The dtype frozen weights are kept in.
    frozen: torch.dtype

    def context(self) -> Any:
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)


@dataclass
class LoopResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    first_step_seconds: float = 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_steps_per_second(self) -> float:
        rest = self.seconds - self.first_step_seconds
        return (self.steps - 1) / rest if self.steps > 1 and rest > 0 else self.steps_per_second


def training_device() -> torch.device:
    from sd_runtime.pipelines import resolve_device
    from sd_runtime.settings import Settings

    device, _ = resolve_device(Settings.from_env())
    return device


def precision_for(options: TrainOptions, device: torch.device) -> Precision:
    wanted = options.mixed_precision
    if wanted == "no":
        return Precision(device, None, torch.float32)
    if device.type != "cuda":
        log(f"mixed_precision={wanted} is not applied on the {device.type}: training in float32")
        return Precision(device, None, torch.float32)
    if wanted == "bf16" and not torch.cuda.is_bf16_supported():
        raise TrainingError("mixed_precision=bf16 needs a GPU with bfloat16 (Ampere or newer); use fp16 or no")
    dtype = torch.float16 if wanted == "fp16" else torch.bfloat16
    return Precision(device, dtype, dtype)


def seed_everything(seed: int | None) -> int:
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
        log(f"seed={seed} (random; set the seed hyperparameter to repeat this run)")
    else:
        log(f"seed={seed}")
    random.seed(seed)
    torch.manual_seed(seed)
    return seed


def prediction_type(models: Models) -> str:
    kind = models.noise_scheduler.config.prediction_type
    if kind not in PREDICTION_TYPES:
        raise TrainingError(
            f"the model's scheduler config has prediction_type {kind!r}; training supports {PREDICTION_TYPES}"
        )
    return kind


def _log_every(max_steps: int) -> int:
    return max(1, math.ceil(max_steps / MAX_LOG_LINES))


def run_loop(
    models: Models,
    batches: Iterator[dict[str, Any]],
    options: TrainOptions,
    precision: Precision,
    unet_parameters: list[torch.nn.Parameter],
    text_parameters: list[torch.nn.Parameter],
    max_steps: int,
    reports: TrainingProgress | None = None,
    batches_per_epoch: int = 1,
) -> LoopResult:
    """Train for ``max_steps`` optimizer steps; raises TrainingError if the loss stops being finite.

    Each step goes to ``reports`` (sent at most once a second), with the epoch it falls in (1-based:
    ``batches_per_epoch`` batches make one).
    """
    from diffusers.optimization import get_scheduler

    device = precision.device
    groups = []
    if unet_parameters:
        groups.append({"params": unet_parameters, "lr": options.learning_rate})
    if text_parameters:
        groups.append({"params": text_parameters, "lr": options.text_encoder_learning_rate or options.learning_rate})
    if not groups:
        raise TrainingError("nothing to train: the UNet is not trained (train_unet) and neither is the text encoder")
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=options.weight_decay, eps=1e-8)
    lr_scheduler = get_scheduler(
        options.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=min(options.lr_warmup_steps, max_steps),
        num_training_steps=max_steps,
        num_cycles=options.lr_cycles,
        power=options.lr_power,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision.autocast == torch.float16)
    text_steps = math.ceil(options.text_encoder_fraction * max_steps) if text_parameters else 0
    if text_parameters and text_steps < max_steps:
        log(f"the text encoder trains for the first {text_steps} of {max_steps} steps (stop_text_encoder)")
    kind = prediction_type(models)
    trained = unet_parameters + text_parameters
    every = _log_every(max_steps)
    result = LoopResult(steps=0)
    started = time.perf_counter()
    for step in range(1, max_steps + 1):
        train_text = step <= text_steps
        if text_parameters and step == text_steps + 1:
            models.text_encoder.eval()
        total = 0.0
        for _ in range(options.gradient_accumulation_steps):
            batch = next(batches)
            with precision.context():
                loss = _loss(models, batch, options, precision, kind, train_text)
            scaler.scale(loss / options.gradient_accumulation_steps).backward()
            total += loss.detach().item() / options.gradient_accumulation_steps
        if not math.isfinite(total):
            raise TrainingError(
                f"the loss became {total} at step {step}: training diverged; lower learning_rate"
                + (" or use mixed_precision bf16/no" if precision.autocast == torch.float16 else "")
            )
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trained, options.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.steps = step
        result.losses.append(total)
        if step == 1:
            result.first_step_seconds = time.perf_counter() - started
        lr = optimizer.param_groups[0]["lr"]
        if step == 1 or step == max_steps or step % every == 0:
            log(f"step={step}/{max_steps} loss={total:.4f} lr={lr:.3g}")
        if reports is not None:
            epoch = epoch_of(step, options.gradient_accumulation_steps, batches_per_epoch)
            reports.step(step, max_steps, total, lr, epoch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result.seconds = time.perf_counter() - started
    log(
        f"trained {result.steps} steps in {result.seconds:.2f} s: {result.steps_per_second:.3f} steps/s, "
        f"{result.steady_steps_per_second:.3f} steps/s after the first step"
    )
    return result


def epoch_of(step: int, accumulation: int, batches_per_epoch: int) -> int:
    """The epoch (1-based) optimizer step ``step`` falls in: each step takes ``accumulation`` batches."""
    return (step - 1) * accumulation // max(1, batches_per_epoch) + 1


def _loss(
    models: Models, batch: dict[str, Any], options: TrainOptions, precision: Precision, kind: str, train_text: bool
) -> torch.Tensor:
    device = precision.device
    pixels = batch["pixel_values"].to(device, dtype=models.vae.dtype, non_blocking=True)
    with torch.no_grad():
        latents = models.vae.encode(pixels).latent_dist.sample() * models.vae.config.scaling_factor
    noise = torch.randn_like(latents)
    if options.offset_noise:
        noise = noise + options.offset_noise * torch.randn(
            latents.shape[0], latents.shape[1], 1, 1, device=device, dtype=latents.dtype
        )
    scheduler = models.noise_scheduler
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), device=device).long()
    noisy = scheduler.add_noise(latents, noise, timesteps)
    input_ids = batch["input_ids"].to(device, non_blocking=True)
    with nullcontext() if train_text else torch.no_grad():
        hidden = models.text_encoder(input_ids, return_dict=False)[0]
    prediction = models.unet(noisy, timesteps, hidden, return_dict=False)[0]
    target = noise if kind == "epsilon" else scheduler.get_velocity(latents, noise, timesteps)
    instances = batch["instances"]
    mse = torch.nn.functional.mse_loss
    loss = mse(prediction[:instances].float(), target[:instances].float(), reduction="mean")
    if prediction.shape[0] > instances:
        prior = mse(prediction[instances:].float(), target[instances:].float(), reduction="mean")
        loss = loss + options.prior_loss_weight * prior
    return loss
