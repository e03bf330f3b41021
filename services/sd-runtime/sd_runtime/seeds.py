"""Seeds and initial noise, as A1111 makes them.

- seed -1 (and subseed -1) is replaced by a random one;
- image i of a job uses seed + i, unless subseed_strength > 0: then every
  image shares the seed and subseed + i varies (A1111's "variation seed");
- each image has its own CPU ``torch.Generator`` seeded with its seed; its
  first draw is the image's initial noise and later draws feed the sampler's
  noise (ancestral and SDE samplers), as A1111's ``ImageRNG`` does with the
  "CPU" random source. Noise is always drawn on the CPU, so a seed gives the
  same picture on any GPU or none.
- with subseed_strength > 0 the noise is the spherical interpolation
  (``slerp``) of the seed's and the subseed's noise;
- seed_resize_from_w/h draws the noise for that size and pastes it centred,
  so a seed keeps its composition at another size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

#: A1111 draws random seeds below this.
MAX_RANDOM_SEED = 4294967294


def resolve_seed(seed: int | None) -> int:
    if seed is None or seed == -1:
        return random.randrange(MAX_RANDOM_SEED)
    return int(seed)


@dataclass(frozen=True)
class SeedPlan:
    seed: int
    subseed: int
    subseed_strength: float
    all_seeds: list[int]
    all_subseeds: list[int]


def plan_seeds(seed: int, subseed: int, subseed_strength: float, count: int) -> SeedPlan:
    seed = resolve_seed(seed)
    subseed = resolve_seed(subseed)
    return SeedPlan(
        seed=seed,
        subseed=subseed,
        subseed_strength=subseed_strength,
        all_seeds=[seed + (i if subseed_strength == 0 else 0) for i in range(count)],
        all_subseeds=[subseed + i for i in range(count)],
    )


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's slerp, normalising along dim 1 exactly as it does, so variations match its output."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return (1 - val) * low + val * high
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def _randn(seed: int, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    generator = generator or torch.Generator("cpu")
    generator.manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def _paste_centred(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    dx = (target.shape[2] - source.shape[2]) // 2
    dy = (target.shape[1] - source.shape[1]) // 2
    w = source.shape[2] if dx >= 0 else source.shape[2] + 2 * dx
    h = source.shape[1] if dy >= 0 else source.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    target[:, ty : ty + h, tx : tx + w] = source[:, sy : sy + h, sx : sx + w]
    return target


@dataclass
class ImageNoise:
    """Initial noise for a batch and the per-image generators that continue its random streams."""

    latents: torch.Tensor  # (batch, C, H, W), float32, CPU
    generators: list[torch.Generator]


def make_noise(
    shape: tuple[int, int, int],
    seeds: list[int],
    subseeds: list[int],
    subseed_strength: float,
    seed_resize_from_w: int = 0,
    seed_resize_from_h: int = 0,
    latent_factor: int = 8,
) -> ImageNoise:
    """Noise of ``shape`` (C, H, W) for each seed."""
    resized = seed_resize_from_h > 0 and seed_resize_from_w > 0
    noise_shape = (
        (shape[0], seed_resize_from_h // latent_factor, seed_resize_from_w // latent_factor) if resized else shape
    )
    generators = []
    images = []
    for i, seed in enumerate(seeds):
        generator = torch.Generator("cpu")
        subnoise = None
        if subseed_strength != 0:
            subnoise = _randn(subseeds[i] if i < len(subseeds) else 0, noise_shape)
        noise = _randn(seed, noise_shape) if resized else _randn(seed, shape, generator)
        if subnoise is not None:
            noise = slerp(subseed_strength, noise, subnoise)
        if resized:
            noise = _paste_centred(_randn(seed, shape, generator), noise)
        generators.append(generator)
        images.append(noise)
    return ImageNoise(latents=torch.stack(images), generators=generators)
