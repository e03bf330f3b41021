"""sd-runtime generation speed on Stable Diffusion 1.5's real architecture (random weights).

    python bench/sd_runtime_gpu.py                      # CUDA, fp16, 512x512, 28 steps, batch 1 and 4
    python bench/sd_runtime_gpu.py --device cpu --size 64 --steps 2 --runs 1   # smoke test on a CPU

(``python -m bench.sd_runtime_gpu`` from the repository root works too; sd-runtime and its
requirements must be installed, with a CUDA build of torch for the GPU run.)

Builds SD 1.5's UNet, VAE and CLIP text encoder from their published
configurations (written out below) with random weights, so no download is
needed, and a byte-level tokenizer padded to CLIP's 49408-token vocabulary.
Speed does not depend on the weights' values. Then it runs the runtime's own
generation path (``sd_runtime.generate.Generator``: seeds, scheduler per
call, pipeline built from the cached components, VAE decode to PIL) with one
warm-up per batch size and ``--runs`` timed runs, and prints the medians:

- images/s: images per second of a whole call (text encoding, sampling, VAE decode);
- it/s: sampling steps per second of the denoising loop alone (first UNet call to last),
  the figure A1111 and diffusers progress bars show; "call it/s" divides steps by the whole call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from sd_runtime.generate import Generator, Plan
from sd_runtime.samplers import resolve_sampler
from sd_runtime.seeds import plan_seeds
from sd_runtime.testing import assemble_pipeline, write_tiny_tokenizer

# stable-diffusion-v1-5: unet/config.json
SD15_UNET: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
# stable-diffusion-v1-5: vae/config.json
SD15_VAE: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# openai/clip-vit-large-patch14, text model (SD 1.5's text_encoder/config.json)
SD15_TEXT_ENCODER: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 768,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
}


def build_sd15(device: torch.device, dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = CLIPTokenizer.from_pretrained(write_tiny_tokenizer(Path(scratch), vocab_size=49408))
    # Initialise on the target device: random init of 860M parameters is slow on a CPU.
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER))
    pipe = assemble_pipeline(unet, vae, text_encoder, tokenizer)
    pipe.to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class LoopTimer:
    """Times the denoising loop: from the first UNet call's start to the last one's end."""

    def __init__(self, unet: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.first: float | None = None
        self.last: float | None = None
        unet.register_forward_pre_hook(self._before)
        unet.register_forward_hook(self._after)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _before(self, *args: Any) -> None:
        if self.first is None:
            self._sync()
            self.first = time.perf_counter()

    def _after(self, *args: Any) -> None:
        self._sync()
        self.last = time.perf_counter()

    def reset(self) -> None:
        self.first = self.last = None

    def seconds(self) -> float:
        assert self.first is not None and self.last is not None
        return self.last - self.first


def plan_for(batch: int, size: int, steps: int, sampler: str) -> Plan:
    return Plan(
        task="txt2img",
        prompt="a photograph of an astronaut riding a horse",
        negative_prompt="blurry, low quality",
        width=size,
        height=size,
        steps=steps,
        cfg_scale=7.0,
        sampler=resolve_sampler(sampler),
        batch_size=batch,
        n_iter=1,
        seeds=plan_seeds(1234, -1, 0.0, batch),
    )


def measure(generator: Generator, timer: LoopTimer, plan: Plan, runs: int, warmup: int) -> dict[str, float]:
    device = timer.device
    for _ in range(warmup):
        generator.run(plan)
    calls, loops = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(runs):
        timer.reset()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        images = generator.run(plan)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        calls.append(time.perf_counter() - started)
        loops.append(timer.seconds())
        assert len(images) == plan.batch_size
    call, loop = statistics.median(calls), statistics.median(loops)
    result = {
        "batch_size": plan.batch_size,
        "seconds_per_call": round(call, 4),
        "images_per_s": round(plan.batch_size / call, 3),
        "it_per_s": round(plan.steps / loop, 3),
        "call_it_per_s": round(plan.steps / call, 3),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], help="default: float16 on CUDA")
    parser.add_argument("--size", type=int, default=512, help="width and height (multiple of 8)")
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--batch-sizes", default="1,4", help="comma-separated")
    parser.add_argument("--sampler", default="Euler a")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per batch size (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float16 if device.type == "cuda" else torch.float32)
    # Random weights in half precision overflow to NaN in places; that costs no time but makes numpy warn.
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()

    started = time.perf_counter()
    pipe = build_sd15(device, dtype)
    built = time.perf_counter() - started
    params = {
        name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in ("unet", "vae", "text_encoder")
    }
    import diffusers

    header = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "size": f"{args.size}x{args.size}",
        "steps": args.steps,
        "sampler": args.sampler,
        "runs": args.runs,
        "parameters_millions": {name: round(count / 1e6, 1) for name, count in params.items()},
        "build_seconds": round(built, 1),
    }
    print(json.dumps(header))
    timer = LoopTimer(pipe.unet, device)
    generator = Generator(pipe, pipe.tokenizer, [])
    results = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        result = measure(generator, timer, plan_for(batch, args.size, args.steps, args.sampler), args.runs, args.warmup)
        results.append(result)
        print(
            f"batch {batch}: {result['images_per_s']:.3f} images/s, {result['it_per_s']:.2f} it/s "
            f"(loop), {result['call_it_per_s']:.2f} it/s (whole call), {result['seconds_per_call']:.3f} s/call"
            + (f", peak {result['peak_memory_gib']} GiB" if "peak_memory_gib" in result else "")
        )
    if args.json:
        args.json.write_text(json.dumps({**header, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
