"""``modules.shared``: the WebUI's settings, command-line options and model lists.

The WebUI runs from its own folder, and so does this stand-in: every path is
relative to the working directory of the process (the harness's WebUI root).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class Options(SimpleNamespace):
    """The settings the extension and the processing read, at the WebUI's defaults."""


opts = Options(
    sd_model_checkpoint=None,  # the checkpoint selected in the top dropdown, by title
    sd_vae="Automatic",
    s_min_uncond=0.0,
    s_churn=0.0,
    s_tmin=0.0,
    s_tmax=0.0,
    s_noise=1.0,
    eta_noise_seed_delta=0,
    ddim_discretize="uniform",
    initial_noise_multiplier=1.0,
    outdir_samples="",
    outdir_txt2img_samples="outputs/txt2img-images",
    outdir_img2img_samples="outputs/img2img-images",
    outdir_grids="",
    outdir_txt2img_grids="outputs/txt2img-grids",
    outdir_img2img_grids="outputs/img2img-grids",
)

cmd_opts = SimpleNamespace(embeddings_dir=os.path.abspath("embeddings"), hypernetwork_dir="models/hypernetworks")

restricted_opts: set[str] = set()

#: Hypernetworks by name (the file's stem) -> path, as ``reload_hypernetworks`` lists them.
hypernetworks: dict[str, str] = {}

sd_model: Any = None


def reload_hypernetworks() -> None:
    folder = Path(cmd_opts.hypernetwork_dir)
    found = sorted(p for p in folder.rglob("*") if p.suffix in {".pt", ".safetensors"}) if folder.is_dir() else []
    hypernetworks.clear()
    hypernetworks.update({p.stem: str(p.resolve()) for p in found})


class _Styles:
    """No saved styles: prompts are used as written."""

    def apply_styles_to_prompt(self, prompt: str, styles: list[str]) -> str:
        return prompt

    def apply_negative_styles_to_prompt(self, prompt: str, styles: list[str]) -> str:
        return prompt


prompt_styles = _Styles()
