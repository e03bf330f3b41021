"""sd-runtime generation speed on Stable Diffusion 1.5's real architecture (random weights),
beside the fastest configuration plain diffusers documents.

    python bench/sd_runtime_gpu.py                      # CUDA, fp16, 512x512, 28 steps, batch 1 and 4
    python bench/sd_runtime_gpu.py --device cpu --size 64 --steps 2 --runs 1 --no-compile   # smoke test on a CPU

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

Three configurations run on the same components, one after the other (``--configs``):

- ``runtime``: the runtime as deployed by default: the pipeline as ``PipelineCache`` prepares
  it with default settings (``prepare_for_speed``: SDPA attention, nothing else);
- ``best``: a plain diffusers ``StableDiffusionPipeline`` set up as diffusers documents for
  speed: ``AttnProcessor2_0`` (SDPA) set explicitly, UNet and VAE in ``torch.channels_last``,
  ``torch.compile(pipe.unet, mode="max-autotune", fullgraph=True)``, called with
  ``EulerAncestralDiscreteScheduler`` ("Euler a"), the same prompts, seeds (CPU generators),
  size, steps and guidance, PIL output;
- ``runtime-tuned``: the runtime with ``SD_RUNTIME_CHANNELS_LAST=1`` and
  ``SD_RUNTIME_COMPILE_UNET=<--compile-mode>`` (``prepare_for_speed`` with those settings:
  channels-last UNet and VAE, the UNet compiled in place, ``unet.compile(mode=...)``, no fullgraph).

Compilation happens in the warm-up runs, which are not timed; torch.compile's in-memory
state is reset before each compiled configuration and batch size, so every batch size gets a
graph compiled for its own shape (inductor's on-disk caches are kept, so ``runtime-tuned``
reuses ``best``'s autotuning). ``--no-compile`` leaves the UNet eager in both (the CPU
smoke test; on a GPU, it separates channels-last's effect from compilation's). Printed per
batch size: each configuration's images/s, and the ratios sd-runtime / best.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch._dynamo

from sd_runtime.generate import Generator, Plan
from sd_runtime.pipelines import prepare_for_speed
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
        self._undo: list[Callable[[], None]] = []
        compiled = getattr(unet, "_compiled_call_impl", None)
        if compiled is not None:
            # Compiled in place (nn.Module.compile): hooks would run inside the compiled call; time around it.
            def timed(*args: Any, **kwargs: Any) -> Any:
                self._before()
                output = compiled(*args, **kwargs)
                self._after()
                return output

            unet._compiled_call_impl = timed
            self._undo.append(lambda: setattr(unet, "_compiled_call_impl", compiled))
        else:
            # A torch.compile wrapper's own hooks run outside the compiled code, as an eager module's do.
            for hook in (unet.register_forward_pre_hook(self._before), unet.register_forward_hook(self._after)):
                self._undo.append(hook.remove)

    def close(self) -> None:
        """Take the timing off the UNet (before it is compiled: hooks would be traced into its graph)."""
        for undo in self._undo:
            undo()
        self._undo = []

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


def measure(run: Callable[[Plan], list], timer: LoopTimer, plan: Plan, runs: int, warmup: int) -> dict[str, float]:
    device = timer.device
    for _ in range(warmup):
        run(plan)
    calls, loops = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(runs):
        timer.reset()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        images = run(plan)
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


def best_diffusers_pipeline(base: Any, compile_mode: str | None) -> Any:
    """A plain StableDiffusionPipeline on ``base``'s components, set up as diffusers documents for speed.

    Note: channels-last is applied to the shared UNet and VAE in place.
    """
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe = StableDiffusionPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=base.unet,
        scheduler=EulerAncestralDiscreteScheduler.from_config(base.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if compile_mode:
        pipe.unet = torch.compile(pipe.unet, mode=compile_mode, fullgraph=True)
    return pipe


def diffusers_call(pipe: Any) -> Callable[[Plan], list]:
    def run(plan: Plan) -> list:
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in plan.seeds.all_seeds]
        return pipe(
            prompt=[plan.prompt] * plan.batch_size,
            negative_prompt=[plan.negative_prompt] * plan.batch_size,
            num_inference_steps=plan.steps,
            guidance_scale=plan.cfg_scale,
            width=plan.width,
            height=plan.height,
            generator=generators,
        ).images

    return run


def runtime_pipeline(base: Any, channels_last: bool, compile_mode: str | None) -> Any:
    """A pipeline on ``base``'s components, prepared as ``PipelineCache`` prepares a loaded checkpoint."""
    pipe = assemble_pipeline(base.unet, base.vae, base.text_encoder, base.tokenizer)
    pipe.set_progress_bar_config(disable=True)
    return prepare_for_speed(pipe, channels_last=channels_last, compile_mode=compile_mode)


CONFIGS = ("runtime", "best", "runtime-tuned")


def describe(name: str, compile_mode: str | None) -> str:
    compiled = f"torch.compile(unet, mode={compile_mode!r}, fullgraph=True)" if compile_mode else "no torch.compile"
    return {
        "runtime": "sd-runtime, default settings (SDPA)",
        "best": f"plain diffusers: SDPA, channels-last UNet+VAE, {compiled}",
        "runtime-tuned": f"sd-runtime, SD_RUNTIME_CHANNELS_LAST=1 SD_RUNTIME_COMPILE_UNET={compile_mode or 0}",
    }[name]


def print_result(name: str, result: dict[str, Any]) -> None:
    print(
        ("" if name == "runtime" else f"[{name}] ")
        + f"batch {result['batch_size']}: {result['images_per_s']:.3f} images/s, {result['it_per_s']:.2f} it/s "
        f"(loop), {result['call_it_per_s']:.2f} it/s (whole call), {result['seconds_per_call']:.3f} s/call"
        + (f", peak {result['peak_memory_gib']} GiB" if "peak_memory_gib" in result else "")
    )


def ratios(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per batch size: each configuration's images/s, and sd-runtime's (default and tuned) over best's."""
    rows = []
    by_batch: dict[int, dict[str, float]] = {}
    for name, measured in results.items():
        for result in measured:
            by_batch.setdefault(result["batch_size"], {})[name] = result["images_per_s"]
    for batch, speeds in by_batch.items():
        row: dict[str, Any] = {"batch_size": batch, **{f"{name}_images_per_s": v for name, v in speeds.items()}}
        if "best" in speeds:
            for name in ("runtime", "runtime-tuned"):
                if name in speeds:
                    row[f"{name}/best"] = round(speeds[name] / speeds["best"], 3)
        rows.append(row)
    return rows


def write_json(path: Path | None, header: dict[str, Any], results: dict[str, list[dict[str, Any]]]) -> None:
    """The figures so far (written after every measurement, so a run cut short keeps them)."""
    if path is None:
        return
    document = {**header, "results": results.get("runtime", []), "configurations": results, "ratios": ratios(results)}
    path.write_text(json.dumps(document, indent=2))


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
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated, always run in this order: {', '.join(CONFIGS)}"
    )
    parser.add_argument("--compile-mode", default="max-autotune", help="torch.compile mode of best and runtime-tuned")
    parser.add_argument("--no-compile", action="store_true", help="no torch.compile (CPU smoke test)")
    args = parser.parse_args(argv)
    # Line by line, so a run stopped by a time limit still shows what it measured.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    requested = {c.strip() for c in args.configs.split(",") if c.strip()}
    if requested - set(CONFIGS):
        parser.error(f"unknown --configs {sorted(requested - set(CONFIGS))}; known: {', '.join(CONFIGS)}")
    # Always in this order: "runtime" needs the components as loaded, "best" turns them channels-last in
    # place, and "runtime-tuned" compiles the UNet in place.
    configs = [c for c in CONFIGS if c in requested]
    compile_mode = None if args.no_compile else args.compile_mode

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
        "compile_mode": compile_mode,
        "configs": {name: describe(name, compile_mode) for name in configs},
    }
    print(json.dumps(header))
    batches = [int(b) for b in args.batch_sizes.split(",")]
    results: dict[str, list[dict[str, Any]]] = {}
    for name in configs:
        if name == "runtime":
            target = runtime_pipeline(pipe, channels_last=False, compile_mode=None)
            run: Callable[[Plan], list] = Generator(target, target.tokenizer, []).run
        elif name == "best":
            target = best_diffusers_pipeline(pipe, compile_mode)
            run = diffusers_call(target)
        else:
            target = runtime_pipeline(pipe, channels_last=True, compile_mode=compile_mode)
            run = Generator(target, target.tokenizer, []).run
        timer = LoopTimer(target.unet, device)
        results[name] = []
        for batch in batches:
            if compile_mode and name != "runtime":
                torch._dynamo.reset()
            plan = plan_for(batch, args.size, args.steps, args.sampler)
            warm_started = time.perf_counter()
            result = measure(run, timer, plan, args.runs, args.warmup)
            # Warm-up time, compilation included: the whole measurement less the timed runs (approximately).
            warmup_seconds = time.perf_counter() - warm_started - result["seconds_per_call"] * args.runs
            result["warmup_seconds"] = round(max(warmup_seconds, 0.0), 1)
            results[name].append(result)
            print_result(name, result)
            write_json(args.json, header, results)
        timer.close()
    for row in ratios(results):
        parts = [f"{name} {row[f'{name}_images_per_s']:.3f}" for name in configs]
        line = f"batch {row['batch_size']} images/s: " + ", ".join(parts)
        for name in ("runtime", "runtime-tuned"):
            if f"{name}/best" in row:
                line += f"; {name}/best {row[f'{name}/best']:.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
