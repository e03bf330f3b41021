"""sd-runtime ``train`` speed (DreamBooth and LoRA) against a bare diffusers training loop on the same work.

    python -m bench.sd_runtime_train --device cpu --size 32 --steps 8 --runs 3   # tiny model on a CPU
    python -m bench.sd_runtime_train --sd15                                        # SD 1.5, CUDA, fp16, 512x512

Both sides train the same model folder on the same images with the same
settings (batch size, resolution, steps, learning rate, mixed precision,
LoRA rank): sd-runtime through its real entry point (``sd_runtime.training.run``
on a temporary ``/opt/ml`` tree, as SageMaker runs it), the baseline as the
smallest loop diffusers' ``train_dreambooth.py`` / ``train_dreambooth_lora.py``
boil down to (images decoded and cropped once, VAE encode, DDPM noise, UNet,
MSE, AdamW, gradient clipping, autocast + GradScaler for fp16).

Speed is optimizer steps per second after the first step (the first includes
warm-up: CUDA kernels, allocator), median of ``--runs`` runs; sd-runtime's own
figure is the one its log reports ("... steps/s after the first step"). The
ratio is sd-runtime / baseline, so 1.0 means no overhead.

``--sd15`` builds Stable Diffusion 1.5's real UNet, VAE and text encoder
(``bench.sd_runtime_gpu``'s configurations) with random weights: speed does
not depend on their values. The default is the tiny test model
(``sd_runtime.testing``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import re
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from sd_runtime.testing import build_tiny_pipeline, write_training_images
from sdmw_contracts.training import TrainingHyperparameters

PROMPT = "a photo of zwx dog"
STEADY = re.compile(r"([0-9.]+) steps/s after the first step")


def build_model(folder: Path, sd15: bool, device: torch.device) -> dict[str, float]:
    """The model folder both sides train from; returns parameter counts in millions."""
    if sd15:
        from bench.sd_runtime_gpu import build_sd15

        pipe = build_sd15(device, torch.float16)  # saved in half precision: half the disk; training upcasts
    else:
        pipe = build_tiny_pipeline(seed=0)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    counts = {
        name: sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6 for name in ("unet", "vae", "text_encoder")
    }
    del pipe
    release()
    return counts


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------- sd-runtime


def run_sd_runtime(task: str, model: Path, images: Path, args: argparse.Namespace, device: torch.device) -> float:
    from sd_runtime.training import run

    with tempfile.TemporaryDirectory(prefix="bench-train-") as scratch:
        root = Path(scratch)
        (root / "input" / "data").mkdir(parents=True)
        os.symlink(model, root / "input" / "data" / "model")
        os.symlink(images, root / "input" / "data" / "instance")
        hyperparameters = TrainingHyperparameters(
            task=task,
            model_name="bench",
            max_train_steps=args.steps,
            learning_rate=args.learning_rate,
            resolution=args.size,
            train_batch_size=args.batch,
            instance_prompt=PROMPT,
            lora_rank=args.rank,
            seed=1,
            mixed_precision=args.mixed_precision,
            center_crop=True,
        )
        config = root / "input" / "config"
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters.to_sagemaker()))
        os.environ.update(SD_RUNTIME_ML_ROOT=str(root), SD_RUNTIME_DEVICE=str(device))
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            code = run()
        log = captured.getvalue()
        if code != 0:
            failure = (root / "output" / "failure").read_text() if (root / "output" / "failure").is_file() else log
            raise RuntimeError(f"sd-runtime {task} failed: {failure.strip()}")
    match = STEADY.search(log)
    if match is None:
        raise RuntimeError(f"sd-runtime's log has no steps/s line:\n{log}")
    release()
    return float(match.group(1))


# ----------------------------------------------------------------------------------------- bare diffusers loop


def run_bare(task: str, model: Path, images: Path, args: argparse.Namespace, device: torch.device) -> float:
    import numpy as np
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from PIL import Image

    torch.manual_seed(1)
    pipe = StableDiffusionPipeline.from_pretrained(
        str(model), dtype=torch.float32, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.mixed_precision) if device.type == "cuda" else None
    frozen = half or torch.float32
    vae.to(device, frozen).requires_grad_(False)
    text_encoder.to(device, frozen).requires_grad_(False)
    if task == "lora":
        from peft import LoraConfig

        unet.to(device, frozen).requires_grad_(False)
        unet.add_adapter(
            LoraConfig(
                r=args.rank,
                lora_alpha=args.rank,
                init_lora_weights="gaussian",
                target_modules=["to_k", "to_q", "to_v", "to_out.0"],
            )
        )
        parameters = [p for p in unet.parameters() if p.requires_grad]
        for p in parameters:
            p.data = p.data.float()
        unet.train()  # as the script does at the start of each epoch
    else:
        unet.to(device, torch.float32).train()
        parameters = list(unet.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=args.learning_rate, weight_decay=1e-2)
    scaler = torch.amp.GradScaler(device.type, enabled=half == torch.float16)
    autocast = torch.autocast(device.type, dtype=half) if half else contextlib.nullcontext()

    pixels = []
    for path in sorted(images.glob("*.png")):
        image = Image.open(path).convert("RGB")
        scale = args.size / min(image.size)
        image = image.resize((max(args.size, round(image.width * scale)), max(args.size, round(image.height * scale))))
        left, top = (image.width - args.size) // 2, (image.height - args.size) // 2
        image = image.crop((left, top, left + args.size, top + args.size))
        pixels.append(torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1)
    data = torch.stack(pixels)
    ids = tokenizer(PROMPT, padding="max_length", truncation=True, max_length=77, return_tensors="pt").input_ids
    ids = ids.repeat(args.batch, 1).to(device)

    first = started = 0.0
    for step in range(args.steps):
        if step == 1:
            sync(device)
            first = time.perf_counter()
        if step == 0:
            started = time.perf_counter()
        index = torch.arange(step * args.batch, (step + 1) * args.batch) % len(data)
        batch = data[index].to(device, frozen)
        with autocast:
            with torch.no_grad():
                latents = vae.encode(batch).latent_dist.sample() * vae.config.scaling_factor
                hidden = text_encoder(ids)[0]
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (args.batch,), device=device)
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            prediction = unet(noisy, timesteps, hidden).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), noise.float())
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the scripts log the loss every step, which waits for the step
    sync(device)
    ended = time.perf_counter()
    del pipe, unet, vae, text_encoder, optimizer
    release()
    if args.steps > 1:
        return (args.steps - 1) / (ended - first)
    return 1 / (ended - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="default: cuda with --sd15, else cuda if available, else cpu")
    parser.add_argument("--sd15", action="store_true", help="SD 1.5's architecture (random weights), fp16, 512x512")
    parser.add_argument("--size", type=int, help="resolution (default 512 with --sd15, else 32)")
    parser.add_argument(
        "--steps", type=int, default=None, help="optimizer steps per run (default 20 with --sd15, else 8)"
    )
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="runs per side and task (median reported)")
    parser.add_argument("--tasks", default="dreambooth,lora")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], help="default fp16 with --sd15, else no")
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--rank", type=int, default=4, help="LoRA rank")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if args.sd15 or torch.cuda.is_available() else "cpu"))
    args.size = args.size or (512 if args.sd15 else 32)
    args.steps = args.steps or (20 if args.sd15 else 8)
    args.mixed_precision = args.mixed_precision or ("fp16" if args.sd15 else "no")
    warnings.filterwarnings("ignore")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()

    import diffusers

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-train-data-") as scratch:
        model, images = Path(scratch) / "model", Path(scratch) / "images"
        started = time.perf_counter()
        parameters = build_model(model, args.sd15, device)
        write_training_images(images, count=4, size=args.size + args.size // 4)
        header = {
            "model": "SD 1.5 architecture, random weights" if args.sd15 else "tiny test model",
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
            "mixed_precision": args.mixed_precision,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "size": f"{args.size}x{args.size}",
            "batch": args.batch,
            "steps": args.steps,
            "runs": args.runs,
            "parameters_millions": {k: round(v, 2) for k, v in parameters.items()},
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(header), flush=True)
        for task in args.tasks.split(","):
            ours, bare = [], []
            for _ in range(args.runs):  # alternate, so both sides see the same machine state
                ours.append(run_sd_runtime(task, model, images, args, device))
                bare.append(run_bare(task, model, images, args, device))
            result = {
                "task": task,
                "sd_runtime_steps_per_s": round(statistics.median(ours), 3),
                "bare_steps_per_s": round(statistics.median(bare), 3),
                "ratio": round(statistics.median(ours) / statistics.median(bare), 3),
                "sd_runtime_runs": [round(x, 3) for x in ours],
                "bare_runs": [round(x, 3) for x in bare],
            }
            results.append(result)
            print(
                f"{task}: sd-runtime {result['sd_runtime_steps_per_s']:.3f} steps/s, bare diffusers loop "
                f"{result['bare_steps_per_s']:.3f} steps/s, ratio {result['ratio']:.3f} (median of {args.runs})",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({**header, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
