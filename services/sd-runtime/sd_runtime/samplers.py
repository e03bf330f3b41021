"""A1111 sampler names mapped to diffusers schedulers.

Each scheduler is built from the checkpoint's own scheduler config (so the
model's noise schedule and prediction type are kept), with the options that
make it behave like the A1111 sampler of that name:

- k-diffusion samplers (Euler, Heun, LMS, DPM2, DPM++) discretise time
  linearly from the last training step to 0, which is diffusers'
  ``timestep_spacing="linspace"``; the model's config often says "leading"
  (it was written for PNDM), so it is overridden for them.
- "Karras" / "Exponential" names pick the matching sigma schedule.
- DDIM and PLMS keep the config's spacing: A1111 uses the CompVis
  "uniform" discretisation with an offset of 1, which is "leading" with
  ``steps_offset=1`` as SD's config has it.
- "DPM++ SDE" is k-diffusion's ``sample_dpmpp_sde``, which diffusers
  implements as DPMSolverSDEScheduler (it needs torchsde). Its Brownian noise
  is seeded from the job's seeds so the result is reproducible.
- UniPC uses A1111's defaults: variant bh1, order 3, ending at sigma_min.

Names and A1111's old aliases (``k_euler_a``) match case-insensitively.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from sd_runtime.errors import RequestError

_K_DIFFUSION = {"timestep_spacing": "linspace"}
_KARRAS = {**_K_DIFFUSION, "use_karras_sigmas": True}
_EXPONENTIAL = {**_K_DIFFUSION, "use_exponential_sigmas": True}
_SDE = {"algorithm_type": "sde-dpmsolver++"}


@dataclass(frozen=True)
class Sampler:
    name: str
    scheduler_class: str
    options: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def build(self, base_config: Any, seeds: list[int] | None = None) -> Any:
        """A fresh scheduler for one pipeline call (schedulers keep per-run state, so they are never shared)."""
        import diffusers

        cls = getattr(diffusers, self.scheduler_class)
        accepted = set(inspect.signature(cls.__init__).parameters)
        options = dict(self.options)
        # Reset the sigma-schedule switches the checkpoint's config may carry from another sampler.
        for switch in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
            options.setdefault(switch, False)
        if self.scheduler_class == "DPMSolverSDEScheduler" and seeds:
            options["noise_sampler_seed"] = seeds if len(seeds) > 1 else seeds[0]
        return cls.from_config(base_config, **{k: v for k, v in options.items() if k in accepted})


SAMPLERS: tuple[Sampler, ...] = (
    Sampler("Euler a", "EulerAncestralDiscreteScheduler", _K_DIFFUSION, ("k_euler_a", "k_euler_ancestral")),
    Sampler("Euler", "EulerDiscreteScheduler", _K_DIFFUSION, ("k_euler",)),
    Sampler("LMS", "LMSDiscreteScheduler", _K_DIFFUSION, ("k_lms",)),
    Sampler("LMS Karras", "LMSDiscreteScheduler", _KARRAS, ("k_lms_ka",)),
    Sampler("Heun", "HeunDiscreteScheduler", _K_DIFFUSION, ("k_heun",)),
    Sampler("DPM2", "KDPM2DiscreteScheduler", _K_DIFFUSION, ("k_dpm_2",)),
    Sampler("DPM2 Karras", "KDPM2DiscreteScheduler", _KARRAS, ("k_dpm_2_ka",)),
    Sampler("DPM2 a", "KDPM2AncestralDiscreteScheduler", _K_DIFFUSION, ("k_dpm_2_a",)),
    Sampler("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", _KARRAS, ("k_dpm_2_a_ka",)),
    Sampler("DPM++ 2M", "DPMSolverMultistepScheduler", _K_DIFFUSION, ("k_dpmpp_2m",)),
    Sampler("DPM++ 2M Karras", "DPMSolverMultistepScheduler", _KARRAS, ("k_dpmpp_2m_ka",)),
    Sampler("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {**_K_DIFFUSION, **_SDE}, ("k_dpmpp_2m_sde",)),
    Sampler("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", {**_KARRAS, **_SDE}, ("k_dpmpp_2m_sde_ka",)),
    Sampler("DPM++ 2M SDE Exponential", "DPMSolverMultistepScheduler", {**_EXPONENTIAL, **_SDE}),
    Sampler("DPM++ 3M SDE", "DPMSolverMultistepScheduler", {**_K_DIFFUSION, **_SDE, "solver_order": 3}),
    Sampler("DPM++ 3M SDE Karras", "DPMSolverMultistepScheduler", {**_KARRAS, **_SDE, "solver_order": 3}),
    Sampler("DPM++ 3M SDE Exponential", "DPMSolverMultistepScheduler", {**_EXPONENTIAL, **_SDE, "solver_order": 3}),
    Sampler("DPM++ SDE", "DPMSolverSDEScheduler", _K_DIFFUSION, ("k_dpmpp_sde",)),
    Sampler("DPM++ SDE Karras", "DPMSolverSDEScheduler", _KARRAS, ("k_dpmpp_sde_ka",)),
    Sampler("DDIM", "DDIMScheduler", {}, ("ddim",)),
    Sampler("PLMS", "PNDMScheduler", {"skip_prk_steps": True}, ("plms",)),
    # Ending at sigma_min, as A1111's UniPC does (t_end = 1/N): diffusers' default final sigma of zero
    # makes its corrector divide by an infinite step and turn the image into NaN.
    Sampler(
        "UniPC",
        "UniPCMultistepScheduler",
        {**_K_DIFFUSION, "solver_type": "bh1", "solver_order": 3, "final_sigmas_type": "sigma_min"},
        ("unipc",),
    ),
    Sampler("LCM", "LCMScheduler", {}, ("lcm",)),
)

SUPPORTED_SAMPLERS: tuple[str, ...] = tuple(s.name for s in SAMPLERS)

_BY_NAME: dict[str, Sampler] = {}
for _sampler in SAMPLERS:
    for _name in (_sampler.name, *_sampler.aliases):
        _BY_NAME[_name.casefold()] = _sampler


def resolve_sampler(name: str | None, field_name: str = "sampler_name") -> Sampler:
    sampler = _BY_NAME.get((name or "").strip().casefold())
    if sampler is None:
        raise RequestError(f"unknown {field_name} {name!r}; supported: {', '.join(SUPPORTED_SAMPLERS)}")
    return sampler
