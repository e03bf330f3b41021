"""txt2img, img2img and hires fix on a cached pipeline, the way A1111 runs them.

Every pipeline call gets a pipeline object built from the cached pipeline's
components (no weights are copied or loaded) with a fresh scheduler for the
requested sampler, so nothing about one request sticks to the cached pipeline.

Noise comes from ``seeds.make_noise``: txt2img passes it as ``latents``;
img2img and the hires pass hand it to the scheduler's ``add_noise``, which is
where diffusers' img2img would otherwise use its own draw. Sampler noise
(ancestral/SDE samplers) is drawn from the same per-image CPU generators.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from sd_runtime.controlnet import ControlUnit
from sd_runtime.errors import RequestError, UnsupportedFeature
from sd_runtime.images import resize_image
from sd_runtime.job_watch import JobWatch, SamplingPass
from sd_runtime.samplers import Sampler
from sd_runtime.seeds import SeedPlan, make_noise

#: A1111's latent upscale modes: (torch interpolation mode, antialias).
LATENT_UPSCALERS: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
#: Upscalers that need no model: a plain resize of the decoded image.
IMAGE_UPSCALERS: dict[str, Image.Resampling] = {
    "None": Image.Resampling.LANCZOS,
    "Lanczos": Image.Resampling.LANCZOS,
    "Nearest": Image.Resampling.NEAREST,
}
SUPPORTED_UPSCALERS = (*LATENT_UPSCALERS, *IMAGE_UPSCALERS)

#: A1111's defaults when denoising_strength is not given.
DEFAULT_IMG2IMG_DENOISING = 0.75
DEFAULT_HIRES_DENOISING = 0.7


@dataclass(frozen=True)
class HiresPlan:
    upscaler: str
    upscale_to: tuple[int, int]  # before cropping to the target (both hr_resize_x and _y given)
    target: tuple[int, int]
    steps: int
    denoising: float
    sampler: Sampler
    prompt: str
    negative_prompt: str


@dataclass
class Plan:
    """One generation job, resolved from the request before anything runs."""

    task: str
    prompt: str  # without LoRA and hypernetwork tags
    negative_prompt: str
    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler: Sampler
    batch_size: int
    n_iter: int
    seeds: SeedPlan
    seed_resize_from: tuple[int, int] = (0, 0)
    denoising_strength: float | None = None
    init_images: list[Image.Image] = field(default_factory=list)
    resize_mode: int | str = 0
    eta: float | None = None
    clip_skip: int | None = None
    tiling: bool = False
    hires: HiresPlan | None = None
    control_units: list[ControlUnit] = field(default_factory=list)
    #: (name, strength) of each of the request's hypernetworks, in the order of models.hypernetworks.
    hypernetworks: list[tuple[str, float]] = field(default_factory=list)


def _floor8(value: float) -> int:
    return max(8, int(value) // 8 * 8)


def hires_plan(params: Any, sampler: Sampler, hr_sampler: Sampler, prompt: str, negative_prompt: str) -> HiresPlan:
    """Target size and second-pass settings as A1111's ``init_hr`` computes them."""
    if params.hr_upscaler not in SUPPORTED_UPSCALERS:
        raise UnsupportedFeature(
            f"hr_upscaler {params.hr_upscaler!r} needs an upscaler model this runtime does not have; "
            f"supported: {', '.join(SUPPORTED_UPSCALERS)}"
        )
    width, height = params.width, params.height
    rx, ry = params.hr_resize_x, params.hr_resize_y
    if rx == 0 and ry == 0:
        upscale_to = (int(width * params.hr_scale), int(height * params.hr_scale))
        target = upscale_to
    elif ry == 0:
        upscale_to = target = (rx, rx * height // width)
    elif rx == 0:
        upscale_to = target = (ry * width // height, ry)
    else:
        # Both given: scale to cover the requested box, then crop the middle (A1111's truncate_x/y).
        target = (rx, ry)
        upscale_to = (rx, rx * height // width) if width / height < rx / ry else (ry * width // height, ry)
    denoising = DEFAULT_HIRES_DENOISING if params.denoising_strength is None else params.denoising_strength
    return HiresPlan(
        upscaler=params.hr_upscaler,
        upscale_to=(_floor8(upscale_to[0]), _floor8(upscale_to[1])),
        target=(_floor8(target[0]), _floor8(target[1])),
        steps=params.hr_second_pass_steps or params.steps,
        denoising=denoising,
        sampler=hr_sampler,
        prompt=prompt,
        negative_prompt=negative_prompt,
    )


@contextmanager
def tiled(pipe: Any, enabled: bool) -> Iterator[None]:
    """A1111's "tiling": circular padding in every convolution, so the image wraps seamlessly."""
    if not enabled:
        yield
        return
    convs = [m for model in (pipe.unet, pipe.vae) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    saved = [m.padding_mode for m in convs]
    for conv in convs:
        conv.padding_mode = "circular"
    try:
        yield
    finally:
        for conv, mode in zip(convs, saved, strict=True):
            conv.padding_mode = mode


def _build_pipeline(base: Any, kind: str, scheduler: Any, tokenizer: Any, controlnets: list[Any]) -> Any:
    import diffusers

    if controlnets:
        name = "StableDiffusionControlNetPipeline" if kind == "txt2img" else "StableDiffusionControlNetImg2ImgPipeline"
    else:
        name = "StableDiffusionPipeline" if kind == "txt2img" else "StableDiffusionImg2ImgPipeline"
    components: dict[str, Any] = {
        "vae": base.vae,
        "text_encoder": base.text_encoder,
        "tokenizer": tokenizer,
        "unet": base.unet,
        "scheduler": scheduler,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    if controlnets:
        components["controlnet"] = controlnets[0] if len(controlnets) == 1 else list(controlnets)
    pipe = getattr(diffusers, name)(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _use_noise(scheduler: Any, noise: torch.Tensor) -> None:
    """Make img2img noise its init latents with our seeded noise instead of a draw of its own."""
    add_noise = scheduler.add_noise

    def add_seeded_noise(original_samples: torch.Tensor, pipeline_noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        if tuple(pipeline_noise.shape) != tuple(noise.shape):
            raise RuntimeError(f"noise of shape {tuple(noise.shape)} cannot replace {tuple(pipeline_noise.shape)}")
        return add_noise(original_samples, noise.to(pipeline_noise.device, pipeline_noise.dtype), timesteps)

    scheduler.add_noise = add_seeded_noise


def _control_kwargs(units: list[ControlUnit], width: int, height: int, image_key: str) -> dict[str, Any]:
    if not units:
        return {}
    images = [unit.control_image(width, height) for unit in units]
    single = len(units) == 1

    def one_or_all(values: list[Any]) -> Any:
        return values[0] if single else values

    return {
        image_key: one_or_all(images),
        "controlnet_conditioning_scale": one_or_all([u.weight for u in units]),
        "control_guidance_start": one_or_all([u.guidance_start for u in units]),
        "control_guidance_end": one_or_all([u.guidance_end for u in units]),
        # A1111's "ControlNet is more important" drops the control from the unconditional pass, as guess_mode does.
        "guess_mode": any(u.control_mode == "ControlNet is more important" for u in units),
    }


def _prompt_kwargs(
    pipe: Any, plan: Plan, prompt: str, negative: str, count: int, steps: int, generators: list
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "num_inference_steps": steps,
        "guidance_scale": plan.cfg_scale,
        "generator": generators,
    }
    if plan.clip_skip:
        kwargs["prompt_embeds"] = _encode_skipping_layers(pipe, [prompt] * count, plan.clip_skip)
        kwargs["negative_prompt_embeds"] = _encode_skipping_layers(pipe, [negative] * count, plan.clip_skip)
    else:
        kwargs["prompt"] = [prompt] * count
        kwargs["negative_prompt"] = [negative] * count
    if plan.eta is not None:
        kwargs["eta"] = plan.eta
    return kwargs


def _encode_skipping_layers(pipe: Any, texts: list[str], clip_skip: int) -> torch.Tensor:
    """Prompt embeddings from the CLIP layer ``clip_skip`` before the last, through the final layer norm.

    This is what diffusers' ``clip_skip`` does, done here because its pipelines reach the norm through
    ``text_encoder.text_model``, which transformers 5.6+ no longer has on CLIPTextModel.
    """
    texts = pipe.maybe_convert_prompt(texts, pipe.tokenizer)  # multi-vector textual inversions
    tokens = pipe.tokenizer(
        texts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    encoder = pipe.text_encoder
    with torch.no_grad():
        hidden = encoder(tokens.input_ids.to(encoder.device), output_hidden_states=True).hidden_states
        final_norm = getattr(encoder, "text_model", encoder).final_layer_norm
        return final_norm(hidden[-(clip_skip + 1)]).to(encoder.dtype)


def check_sampling_steps(steps: int, strength: float, what: str) -> None:
    if int(steps * strength) < 1:
        raise RequestError(
            f"{what}: {steps} steps at denoising_strength {strength} leave no sampling step; "
            "raise steps or denoising_strength"
        )


def _img2img_steps(steps: int, strength: float) -> int:
    """How many of ``steps`` an img2img pass at ``strength`` runs (diffusers' ``get_timesteps``)."""
    return min(int(steps * strength), steps)


def _hires_schedule(hires: HiresPlan) -> int:
    """The schedule hires fix asks for: A1111 stretches it so that ``steps * denoising`` of it are
    the requested number."""
    return int(hires.steps / min(hires.denoising, 0.999))


def sampling_passes(plan: Plan) -> list[SamplingPass]:
    """The pipeline calls each batch makes, with the steps each runs: what progress is measured in."""
    if plan.task == "img2img":
        strength = DEFAULT_IMG2IMG_DENOISING if plan.denoising_strength is None else plan.denoising_strength
        return [SamplingPass("img2img", _img2img_steps(plan.steps, strength))]
    passes = [SamplingPass("txt2img", plan.steps)]
    if plan.hires is not None and plan.hires.denoising > 0:
        passes.append(SamplingPass("hires", _img2img_steps(_hires_schedule(plan.hires), plan.hires.denoising)))
    return passes


class Generator:
    """Runs a Plan on a base pipeline; ``controlnets`` are the loaded models of ``plan.control_units``.

    ``watch`` (``sd_runtime.job_watch``) reports the steps of each pipeline call and stops the job when it is
    cancelled; without one, the pipelines run as they are.
    """

    def __init__(self, base: Any, tokenizer: Any, controlnets: list[Any], watch: JobWatch | None = None) -> None:
        self.base = base
        self.tokenizer = tokenizer
        self.controlnets = controlnets
        self.watch = watch
        self._batch = 0
        self.device = base.device
        self.dtype = base.unet.dtype
        self.scale = 2 ** (len(base.vae.config.block_out_channels) - 1)
        self.channels = base.unet.config.in_channels
        if self.channels != 4:
            raise UnsupportedFeature(
                f"this checkpoint's UNet takes {self.channels} channels (an inpainting or other special model); "
                "only standard 4-channel Stable Diffusion checkpoints are supported"
            )

    def run(self, plan: Plan) -> list[Image.Image]:
        images: list[Image.Image] = []
        with tiled(self.base, plan.tiling):
            for batch in range(plan.n_iter):
                self._batch = batch
                window = slice(batch * plan.batch_size, (batch + 1) * plan.batch_size)
                seeds, subseeds = plan.seeds.all_seeds[window], plan.seeds.all_subseeds[window]
                if plan.task == "img2img":
                    images += self._img2img(plan, seeds, subseeds, first_index=batch * plan.batch_size)
                elif plan.hires is None:
                    images += self._txt2img(plan, seeds, subseeds, as_latents=False)
                else:
                    latent = plan.hires.upscaler in LATENT_UPSCALERS
                    first = self._txt2img(plan, seeds, subseeds, as_latents=latent)
                    images += self._hires(plan, first, seeds, subseeds)
        return images

    def _watched(self, pass_index: int) -> dict[str, Any]:
        """The step callback of the current batch's pass ``pass_index``, if the job is watched."""
        return self.watch.step_callback(self._batch, pass_index) if self.watch else {}

    def _noise(self, plan: Plan, width: int, height: int, seeds: list[int], subseeds: list[int]):
        shape = (self.channels, height // self.scale, width // self.scale)
        return make_noise(
            shape,
            seeds,
            subseeds,
            plan.seeds.subseed_strength,
            seed_resize_from_w=plan.seed_resize_from[0],
            seed_resize_from_h=plan.seed_resize_from[1],
            latent_factor=self.scale,
        )

    def _pipeline(self, kind: str, sampler: Sampler, seeds: list[int]) -> Any:
        scheduler = sampler.build(self.base.scheduler.config, seeds)
        return _build_pipeline(self.base, kind, scheduler, self.tokenizer, self.controlnets)

    def _txt2img(self, plan: Plan, seeds: list[int], subseeds: list[int], as_latents: bool) -> Any:
        noise = self._noise(plan, plan.width, plan.height, seeds, subseeds)
        pipe = self._pipeline("txt2img", plan.sampler, seeds)
        kwargs = _prompt_kwargs(pipe, plan, plan.prompt, plan.negative_prompt, len(seeds), plan.steps, noise.generators)
        kwargs.update(_control_kwargs(plan.control_units, plan.width, plan.height, "image"))
        result = pipe(
            **kwargs,
            width=plan.width,
            height=plan.height,
            latents=noise.latents.to(self.device, self.dtype),
            output_type="latent" if as_latents else "pil",
            **self._watched(0),
        )
        return result.images

    def _img2img(self, plan: Plan, seeds: list[int], subseeds: list[int], first_index: int) -> list[Image.Image]:
        strength = DEFAULT_IMG2IMG_DENOISING if plan.denoising_strength is None else plan.denoising_strength
        check_sampling_steps(plan.steps, strength, "img2img")
        count = len(plan.init_images)
        init = [
            resize_image(plan.init_images[(first_index + i) % count], plan.width, plan.height, plan.resize_mode)
            for i in range(len(seeds))
        ]
        noise = self._noise(plan, plan.width, plan.height, seeds, subseeds)
        pipe = self._pipeline("img2img", plan.sampler, seeds)
        _use_noise(pipe.scheduler, noise.latents)
        kwargs = _prompt_kwargs(pipe, plan, plan.prompt, plan.negative_prompt, len(seeds), plan.steps, noise.generators)
        kwargs.update(_control_kwargs(plan.control_units, plan.width, plan.height, "control_image"))
        return pipe(**kwargs, image=init, strength=strength, **self._watched(0)).images

    def _hires(self, plan: Plan, first: Any, seeds: list[int], subseeds: list[int]) -> list[Image.Image]:
        hires = plan.hires
        assert hires is not None
        (up_w, up_h), (width, height) = hires.upscale_to, hires.target
        if hires.upscaler in LATENT_UPSCALERS:
            mode, antialias = LATENT_UPSCALERS[hires.upscaler]
            latents = F.interpolate(
                first, size=(up_h // self.scale, up_w // self.scale), mode=mode, antialias=antialias
            )
            source: Any = _crop_centre(latents, height // self.scale, width // self.scale)
        else:
            resample = IMAGE_UPSCALERS[hires.upscaler]
            source = [_cover_and_crop(image, up_w, up_h, width, height, resample) for image in first]
        if hires.denoising <= 0:
            return self._decode(source) if isinstance(source, torch.Tensor) else source
        steps = _hires_schedule(hires)
        check_sampling_steps(steps, hires.denoising, "hires fix")
        noise = self._noise(plan, width, height, seeds, subseeds)
        pipe = self._pipeline("img2img", hires.sampler, seeds)
        _use_noise(pipe.scheduler, noise.latents)
        kwargs = _prompt_kwargs(pipe, plan, hires.prompt, hires.negative_prompt, len(seeds), steps, noise.generators)
        kwargs.update(_control_kwargs(plan.control_units, width, height, "control_image"))
        return pipe(**kwargs, image=source, strength=hires.denoising, **self._watched(1)).images

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        vae = self.base.vae
        with torch.no_grad():
            decoded = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        return self.base.image_processor.postprocess(decoded, output_type="pil")


def _crop_centre(latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (latents.shape[2] - height) // 2
    left = (latents.shape[3] - width) // 2
    return latents[:, :, top : top + height, left : left + width]


def _cover_and_crop(
    image: Image.Image, up_w: int, up_h: int, width: int, height: int, resample: Image.Resampling
) -> Image.Image:
    resized = image.resize((up_w, up_h), resample)
    left, top = (up_w - width) // 2, (up_h - height) // 2
    return resized.crop((left, top, left + width, top + height))
