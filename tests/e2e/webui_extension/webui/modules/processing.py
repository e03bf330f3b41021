"""``modules.processing``: the processing objects the WebUI hands to scripts, as A1111 1.5.1 builds them.

What matters to the extension is each object's ``__dict__`` when its
``before_process`` runs (it builds the API parameters from it with
``StableDiffusion*ProcessingAPI(**p.__dict__)``) and the methods it calls
afterwards. So the constructors take A1111 1.5.1's parameters, with its
defaults, and set the attributes A1111 sets, with the same values: ``s_tmax``
is ``float('inf')`` unless given ("not representable as a standard ui
option"), the sampler settings come from the options when left at 0, a
txt2img without hires fix has ``denoising_strength`` None, an img2img keeps its
mask as ``image_mask`` and sets ``mask`` to None. Nothing here generates an
image: ``process_images_inner`` is what the extension replaces, and it fails if
the WebUI would have generated locally.
"""

from __future__ import annotations

import random
from typing import Any

from modules import shared
from modules.sd_hijack import model_hijack


def get_fixed_seed(seed: Any) -> int:
    if seed is None or seed == "" or seed == -1:
        return int(random.randrange(4294967294))
    return seed


class StableDiffusionProcessing:
    cached_uc: list[Any] = [None, None]
    cached_c: list[Any] = [None, None]

    def __init__(
        self,
        sd_model: Any = None,
        outpath_samples: str | None = None,
        outpath_grids: str | None = None,
        prompt: str = "",
        styles: list[str] | None = None,
        seed: int = -1,
        subseed: int = -1,
        subseed_strength: float = 0,
        seed_resize_from_h: int = -1,
        seed_resize_from_w: int = -1,
        seed_enable_extras: bool = True,
        sampler_name: str | None = None,
        batch_size: int = 1,
        n_iter: int = 1,
        steps: int = 50,
        cfg_scale: float = 7.0,
        width: int = 512,
        height: int = 512,
        restore_faces: bool = False,
        tiling: bool = False,
        do_not_save_samples: bool = False,
        do_not_save_grid: bool = False,
        extra_generation_params: dict[Any, Any] | None = None,
        overlay_images: Any = None,
        negative_prompt: str | None = None,
        eta: float | None = None,
        do_not_reload_embeddings: bool = False,
        denoising_strength: float = 0,
        ddim_discretize: str | None = None,
        s_min_uncond: float = 0.0,
        s_churn: float = 0.0,
        s_tmax: float | None = None,
        s_tmin: float = 0.0,
        s_noise: float = 1.0,
        override_settings: dict[str, Any] | None = None,
        override_settings_restore_afterwards: bool = True,
        sampler_index: int | None = None,
        script_args: list[Any] | None = None,
    ) -> None:
        self.outpath_samples = outpath_samples
        self.outpath_grids = outpath_grids
        self.prompt = prompt
        self.prompt_for_display = None
        self.negative_prompt = negative_prompt or ""
        self.styles = styles or []
        self.seed = seed
        self.subseed = subseed
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.sampler_name = sampler_name
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.steps = steps
        self.cfg_scale = cfg_scale
        self.width = width
        self.height = height
        self.restore_faces = restore_faces
        self.tiling = tiling
        self.do_not_save_samples = do_not_save_samples
        self.do_not_save_grid = do_not_save_grid
        self.extra_generation_params = extra_generation_params or {}
        self.overlay_images = overlay_images
        self.eta = eta
        self.do_not_reload_embeddings = do_not_reload_embeddings
        self.paste_to = None
        self.color_corrections = None
        self.denoising_strength = denoising_strength
        self.sampler_noise_scheduler_override = None
        self.ddim_discretize = ddim_discretize or shared.opts.ddim_discretize
        self.s_min_uncond = s_min_uncond or shared.opts.s_min_uncond
        self.s_churn = s_churn or shared.opts.s_churn
        self.s_tmin = s_tmin or shared.opts.s_tmin
        self.s_tmax = s_tmax or float("inf")  # A1111: "not representable as a standard ui option"
        self.s_noise = s_noise or shared.opts.s_noise
        self.override_settings = {k: v for k, v in (override_settings or {}).items() if k not in shared.restricted_opts}
        self.override_settings_restore_afterwards = override_settings_restore_afterwards
        self.is_using_inpainting_conditioning = False
        self.disable_extra_networks = False
        self.token_merging_ratio = 0
        self.token_merging_ratio_hr = 0
        if not seed_enable_extras:
            self.subseed = -1
            self.subseed_strength = 0
            self.seed_resize_from_h = 0
            self.seed_resize_from_w = 0
        self.scripts = None
        self.script_args = script_args
        self.all_prompts: list[str] | None = None
        self.all_negative_prompts: list[str] | None = None
        self.all_seeds: list[int] | None = None
        self.all_subseeds: list[int] | None = None
        self.iteration = 0
        self.is_hr_pass = False
        self.sampler = None
        self.prompts = None
        self.negative_prompts = None
        self.seeds = None
        self.subseeds = None
        self.step_multiplier = 1
        self.cached_uc = StableDiffusionProcessing.cached_uc
        self.cached_c = StableDiffusionProcessing.cached_c
        self.uc = None
        self.c = None

    @property
    def sd_model(self) -> Any:
        return shared.sd_model

    def setup_prompts(self) -> None:
        count = self.batch_size * self.n_iter
        prompts = self.prompt if isinstance(self.prompt, list) else count * [self.prompt]
        negatives = self.negative_prompt if isinstance(self.negative_prompt, list) else count * [self.negative_prompt]
        self.all_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles) for x in prompts]
        self.all_negative_prompts = [
            shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles) for x in negatives
        ]

    def init(self, all_prompts: list[str], all_seeds: list[int], all_subseeds: list[int]) -> None:
        pass

    def setup_conds(self) -> None:
        """Encoding the prompts: here, only what it notes for the infotext (the embeddings used)."""
        model_hijack.note_prompts(list(self.prompts or []) + list(self.negative_prompts or []))


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    def __init__(
        self,
        enable_hr: bool = False,
        denoising_strength: float = 0.75,
        firstphase_width: int = 0,
        firstphase_height: int = 0,
        hr_scale: float = 2.0,
        hr_upscaler: str | None = None,
        hr_second_pass_steps: int = 0,
        hr_resize_x: int = 0,
        hr_resize_y: int = 0,
        hr_sampler_name: str | None = None,
        hr_prompt: str = "",
        hr_negative_prompt: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.enable_hr = enable_hr
        self.denoising_strength = denoising_strength
        self.hr_scale = hr_scale
        self.hr_upscaler = hr_upscaler
        self.hr_second_pass_steps = hr_second_pass_steps
        self.hr_resize_x = hr_resize_x
        self.hr_resize_y = hr_resize_y
        self.hr_upscale_to_x = hr_resize_x
        self.hr_upscale_to_y = hr_resize_y
        self.hr_sampler_name = hr_sampler_name
        self.hr_prompt = hr_prompt
        self.hr_negative_prompt = hr_negative_prompt
        self.all_hr_prompts = None
        self.all_hr_negative_prompts = None
        if firstphase_width != 0 or firstphase_height != 0:
            self.hr_upscale_to_x = self.width
            self.hr_upscale_to_y = self.height
            self.width = firstphase_width
            self.height = firstphase_height
        self.truncate_x = 0
        self.truncate_y = 0
        self.applied_old_hires_behavior_to = None
        self.hr_prompts = None
        self.hr_negative_prompts = None
        self.hr_extra_network_data = None
        self.hr_c = None
        self.hr_uc = None


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    def __init__(
        self,
        init_images: list[Any] | None = None,
        resize_mode: int = 0,
        denoising_strength: float = 0.75,
        image_cfg_scale: float | None = None,
        mask: Any = None,
        mask_blur: int | None = None,
        mask_blur_x: int = 4,
        mask_blur_y: int = 4,
        inpainting_fill: int = 0,
        inpaint_full_res: bool = True,
        inpaint_full_res_padding: int = 0,
        inpainting_mask_invert: int = 0,
        initial_noise_multiplier: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_images = init_images
        self.resize_mode = resize_mode
        self.denoising_strength = denoising_strength
        self.image_cfg_scale = None  # only instruct-pix2pix ("edit") models keep it
        self.init_latent = None
        self.image_mask = mask
        self.latent_mask = None
        self.mask_for_overlay = None
        if mask_blur is not None:
            mask_blur_x = mask_blur
            mask_blur_y = mask_blur
        self.mask_blur_x = mask_blur_x
        self.mask_blur_y = mask_blur_y
        self.inpainting_fill = inpainting_fill
        self.inpaint_full_res = inpaint_full_res
        self.inpaint_full_res_padding = inpaint_full_res_padding
        self.inpainting_mask_invert = inpainting_mask_invert
        self.initial_noise_multiplier = (
            shared.opts.initial_noise_multiplier if initial_noise_multiplier is None else initial_noise_multiplier
        )
        self.mask = None
        self.nmask = None
        self.image_conditioning = None


class Processed:
    """What processing answers, and the WebUI shows: the images and the info text."""

    def __init__(
        self,
        p: StableDiffusionProcessing,
        images_list: list[Any],
        seed: int = -1,
        info: str = "",
        subseed: int | None = None,
        all_prompts: list[str] | None = None,
        all_negative_prompts: list[str] | None = None,
        all_seeds: list[int] | None = None,
        all_subseeds: list[int] | None = None,
        index_of_first_image: int = 0,
        infotexts: list[str] | None = None,
        comments: str = "",
    ) -> None:
        self.images = images_list
        self.prompt = p.prompt
        self.seed = seed
        self.subseed = subseed
        self.info = info
        self.comments = comments
        self.index_of_first_image = index_of_first_image
        self.infotexts = infotexts or [info]


class LocalGenerationAttempted(AssertionError):
    """The WebUI would have generated on the local GPU: the extension did not take the job to the cloud."""


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    raise LocalGenerationAttempted("the extension left the job to the local WebUI")
