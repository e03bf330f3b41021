"""``POST /invocations``: an InvocationRequest in; the job's files written to S3; an InvocationResponse out.

Everything the request asks for is checked before any model is fetched or
loaded, so bad input fails in milliseconds with a message, not after a
multi-GB download. The parameters' bounds are field constraints of the
contract (``sdmw_contracts.generation``), so parsing the request checks
them; what depends on the plan (hires fix's size, img2img's steps) is checked
here. Jobs run one at a time (``Runtime.lock``): one GPU, one cached pipeline
that requests temporarily modify (LoRA, embeddings, hypernetworks).

The runtime writes the job's final files itself (``sd_runtime.results``):
the images as JPEG, then the parameter file, where the seed's clients look.

This module imports no torch at import time, so the server starts and
answers ``/ping`` at once; the heavy modules are imported by the first job.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydantic import ValidationError

from sd_runtime.errors import JobCancelled, RequestError, UnsupportedFeature, is_out_of_memory
from sd_runtime.job_watch import CancelMarker, JobWatch, marker_bucket
from sd_runtime.models import ModelStore
from sd_runtime.progress import MIN_INTERVAL_S, ProgressReporter, Sink, sink_from_env
from sd_runtime.results import check_results, write_results
from sd_runtime.settings import Settings
from sdmw_contracts.events.progress import InferenceProgressReported
from sdmw_contracts.generation import GenerationParams
from sdmw_contracts.runtime import InvocationRequest, InvocationResponse, ModelRef
from sdmw_contracts.s3 import split_s3_uri

logger = logging.getLogger("sd_runtime")

VERSION = "sd-runtime"


def _validation_message(error: ValidationError, what: str) -> str:
    problems = []
    for item in error.errors()[:5]:
        location = ".".join(str(part) for part in item["loc"]) or what
        problems.append(f"{location}: {item['msg']}")
    more = f" (and {error.error_count() - 5} more)" if error.error_count() > 5 else ""
    return f"invalid {what}: " + "; ".join(problems) + more


def parse_request(body: Any) -> InvocationRequest:
    """The one parse of the body: the contract's field constraints are the generation limits."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body or b"null")
        except ValueError as error:
            raise RequestError(f"the request body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object (an InvocationRequest)")
    try:
        return InvocationRequest.model_validate(body)
    except ValidationError as error:
        raise RequestError(_validation_message(error, "invocation request")) from None


def generation_inputs(request: InvocationRequest) -> tuple[GenerationParams, ModelRef]:
    """txt2img/img2img need the parameters and a checkpoint (and img2img an image)."""
    if request.params is None:
        raise RequestError(f"task {request.task!r} needs 'params' (the A1111 txt2img/img2img parameters)")
    if request.models.checkpoint is None:
        raise RequestError(f"task {request.task!r} needs a checkpoint (models.checkpoint)")
    if request.task == "img2img" and not request.params.init_images:
        raise RequestError("img2img needs params.init_images: at least one base64 image")
    return request.params, request.models.checkpoint


@dataclass
class _Prepared:
    """A generation request after every check, before any model is loaded."""

    params: GenerationParams
    checkpoint: ModelRef
    plan: Any  # generate.Plan
    lora_weights_by_tag: dict[str, float]
    warnings: list[str]


class Runtime:
    def __init__(
        self,
        settings: Settings | None = None,
        store: ModelStore | None = None,
        progress_sink: Sink | None = None,
        progress_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = store or ModelStore(self.settings.cache_dir)
        #: Where generation jobs report their steps (the bus named by SDMW_EVENT_BUS, when there is one).
        self.progress_sink = progress_sink or sink_from_env()
        self.progress_interval_s = progress_interval_s
        self.lock = threading.Lock()
        self._pipelines: Any = None
        self._controlnets: Any = None
        self._captioner: Any = None

    # The caches import torch, so they are made by the first job, not at start-up.
    @property
    def pipelines(self) -> Any:
        if self._pipelines is None:
            from sd_runtime.pipelines import PipelineCache

            self._pipelines = PipelineCache(self.store, self.settings)
        return self._pipelines

    @property
    def controlnets(self) -> Any:
        if self._controlnets is None:
            from sd_runtime.controlnet import ControlNetCache

            pipelines = self.pipelines
            self._controlnets = ControlNetCache(
                self.store, self.settings.controlnet_cache_size, pipelines.device, pipelines.dtype
            )
        return self._controlnets

    @property
    def captioner(self) -> Any:
        if self._captioner is None:
            from sd_runtime.interrogate import Captioner

            self._captioner = Captioner(self.store, self.settings)
        return self._captioner

    def invoke(self, body: Any) -> InvocationResponse:
        request = parse_request(body)
        with self.lock:
            started = time.monotonic()
            try:
                if request.task == "merge":
                    return self._merge(request)
                if request.task.startswith("interrogate"):
                    return self._interrogate(request)
                return self._generate(request)
            except Exception as error:
                if is_out_of_memory(error):
                    from sd_runtime.pipelines import release_memory

                    release_memory()
                raise
            finally:
                logger.info("%s %s took %.1fs", request.task, request.inference_id, time.monotonic() - started)

    def _cancel_marker(self, request: InvocationRequest) -> CancelMarker:
        """Where the job's owner puts its cancel marker, read with the model store's S3 access."""
        results_bucket, _ = split_s3_uri(request.results.prefix)
        return CancelMarker(self.store.client_factory(), marker_bucket(results_bucket), request.inference_id)

    def _stop_if_cancelled(self, request: InvocationRequest) -> CancelMarker:
        """Once the request is checked and before anything is loaded: was the job cancelled while it waited
        in the endpoint's queue? The marker, to look at again while the job runs."""
        marker = self._cancel_marker(request)
        if marker.present():
            raise JobCancelled(f"inference job {request.inference_id} was cancelled before it started")
        return marker

    def _watch(self, request: InvocationRequest, plan: Any, marker: CancelMarker) -> JobWatch:
        from sd_runtime.generate import sampling_passes

        reporter = ProgressReporter(
            request.inference_id, InferenceProgressReported, self.progress_sink, self.progress_interval_s
        )
        return JobWatch(reporter, marker.present, sampling_passes(plan), batches=plan.n_iter)

    def _finish(
        self,
        request: InvocationRequest,
        images: list[Image.Image],
        parameters: dict[str, Any],
        info: str,
        caption: str | None = None,
    ) -> InvocationResponse:
        """Writes the job's files, then answers where they are."""
        files = write_results(self.store, request.results, images, parameters, info)
        return InvocationResponse(files=files, parameters=parameters, info=info, caption=caption)

    # ------------------------------------------------------------------ merge

    def _merge(self, request: InvocationRequest) -> InvocationResponse:
        from sd_runtime.merge import run_merge

        if request.merge is None:
            raise RequestError("task 'merge' needs 'merge' (primary, secondary, method, multiplier, output_s3_uri)")
        check_results(request.results, 0, request.task)
        self._stop_if_cancelled(request)
        info = run_merge(self.store, request.merge, self.settings.cache_dir / "merge", request.inference_id)
        return self._finish(request, [], request.merge.model_dump(mode="json"), json.dumps(info))

    # --------------------------------------------------------- interrogation

    def _interrogate(self, request: InvocationRequest) -> InvocationResponse:
        """A1111's interrogate: ``{"caption": ...}``, with the caption and the model used in ``info``."""
        from sd_runtime.interrogate import check_interrogation, interrogation_parameters

        image, params = check_interrogation(request, self.settings)
        check_results(request.results, 0, request.task)
        self._stop_if_cancelled(request)
        caption = self.captioner.caption(image)
        info = {"caption": caption, "model": self.settings.caption_model, "task": request.task, "version": VERSION}
        parameters = interrogation_parameters(params)
        return self._finish(request, [], parameters, json.dumps(info), caption=caption)

    # ------------------------------------------------------------ generation

    def _prepare(self, request: InvocationRequest) -> _Prepared:
        from sd_runtime.addons import extract_hypernet_tags, extract_lora_tags, hypernetwork_strengths
        from sd_runtime.controlnet import parse_units
        from sd_runtime.generate import Plan
        from sd_runtime.images import decode_image
        from sd_runtime.samplers import resolve_sampler
        from sd_runtime.seeds import plan_seeds

        params, checkpoint = generation_inputs(request)
        check_results(request.results, params.image_count(), request.task)
        warnings = _unsupported(params)
        sampler = resolve_sampler(_sampler_name(params))
        prompt, tags = extract_lora_tags(params.prompt)
        prompt, hypernet_tags = extract_hypernet_tags(prompt)
        init_images = []
        if request.task == "img2img":
            init_images = [decode_image(data, f"init_images[{i}]") for i, data in enumerate(params.init_images)]
        hires = None
        if request.task == "txt2img" and params.enable_hr:
            hires, hr_tags, hr_hypernet_tags = _hires(params, sampler, prompt)
            tags = {**hr_tags, **tags}
            hypernet_tags = {**hr_hypernet_tags, **hypernet_tags}
        hypernet_names = [ref.name for ref in request.models.hypernetworks]
        hypernet_strengths = hypernetwork_strengths(hypernet_names, hypernet_tags)
        units, unit_warnings = parse_units(
            params.alwayson_scripts.controlnet.args, request.models.controlnets, init_images[0] if init_images else None
        )
        warnings += unit_warnings
        plan = Plan(
            task=request.task,
            prompt=prompt,
            negative_prompt=params.negative_prompt,
            width=params.width,
            height=params.height,
            steps=params.steps,
            cfg_scale=params.cfg_scale,
            sampler=sampler,
            batch_size=params.batch_size,
            n_iter=params.n_iter,
            seeds=plan_seeds(params.seed, params.subseed, params.subseed_strength, params.image_count()),
            seed_resize_from=(params.seed_resize_from_w, params.seed_resize_from_h),
            denoising_strength=params.denoising_strength,
            init_images=init_images,
            resize_mode=params.resize_mode,
            eta=params.eta,
            clip_skip=_clip_skip(params.override_settings),
            tiling=params.tiling,
            hires=hires,
            control_units=units,
            hypernetworks=list(zip(hypernet_names, hypernet_strengths, strict=True)),
        )
        if request.task == "img2img":
            from sd_runtime.generate import DEFAULT_IMG2IMG_DENOISING, check_sampling_steps

            strength = DEFAULT_IMG2IMG_DENOISING if plan.denoising_strength is None else plan.denoising_strength
            check_sampling_steps(plan.steps, strength, "img2img")
        return _Prepared(params=params, checkpoint=checkpoint, plan=plan, lora_weights_by_tag=tags, warnings=warnings)

    def _generate(self, request: InvocationRequest) -> InvocationResponse:
        from sd_runtime.addons import LoadedFile, applied, lora_weights
        from sd_runtime.generate import Generator
        from sd_runtime.hypernetworks import check_fit, hypernetworks_applied, load_hypernetwork

        prepared = self._prepare(request)
        plan = prepared.plan
        watch = self._watch(request, plan, self._stop_if_cancelled(request))
        watch.loading()
        models = request.models
        loras = [LoadedFile(ref.name, self.store.fetch(ref.s3_uri, what="LoRA")) for ref in models.loras]
        embeddings = [LoadedFile(ref.name, self.store.fetch(ref.s3_uri, what="embedding")) for ref in models.embeddings]
        hypernetworks = [
            load_hypernetwork(LoadedFile(ref.name, self.store.fetch(ref.s3_uri, what="hypernetwork")), strength)
            for ref, (_, strength) in zip(models.hypernetworks, plan.hypernetworks, strict=True)
        ]
        pipe = self.pipelines.get(prepared.checkpoint.s3_uri, prepared.checkpoint.name)
        controlnets = [self.controlnets.get(unit.model_ref, dict(pipe.unet.config)) for unit in plan.control_units]
        check_fit(hypernetworks, pipe.unet)
        hypernetworks = [h.to(pipe.device, pipe.unet.dtype) for h in hypernetworks]
        weights = lora_weights(loras, prepared.lora_weights_by_tag)
        with (
            applied(pipe, loras, weights, embeddings) as tokenizer,
            hypernetworks_applied([pipe.unet, *controlnets], hypernetworks),
        ):
            images = Generator(pipe, tokenizer, controlnets, watch).run(plan)
        watch.saving()
        info = build_info(prepared, [f.name for f in loras], weights)
        return self._finish(request, images, _parameters_used(prepared), json.dumps(info))


def _unsupported(params: GenerationParams) -> list[str]:
    """Refuses what cannot run at all; warnings for what is ignored."""
    if params.script_name:
        raise UnsupportedFeature(f"script {params.script_name!r}: scripts are not supported by this runtime")
    warnings = []
    if params.restore_faces:
        warnings.append("restore_faces was ignored: this runtime has no face restoration model")
    if params.styles:
        warnings.append(f"styles {params.styles} were ignored: this runtime has no saved styles")
    return warnings


def _hires(params: GenerationParams, sampler: Any, prompt: str) -> tuple[Any, dict[str, float], dict[str, float]]:
    """Hires fix's plan and the LoRA and hypernetwork tags of its own prompt. Its size is checked here, where
    hires fix will really run (txt2img with enable_hr), so an img2img that leaves enable_hr on is not refused."""
    from sd_runtime.addons import extract_hypernet_tags, extract_lora_tags
    from sd_runtime.generate import hires_plan
    from sd_runtime.samplers import resolve_sampler

    problem = params.hires_problem()
    if problem:
        raise RequestError(problem)
    hr_name = params.hr_sampler_name
    same = not hr_name or hr_name == "Use same sampler"
    hr_sampler = sampler if same else resolve_sampler(hr_name, "hr_sampler_name")
    hr_prompt, hr_tags = extract_lora_tags(params.hr_prompt) if params.hr_prompt else (prompt, {})
    hr_prompt, hr_hypernet_tags = extract_hypernet_tags(hr_prompt) if params.hr_prompt else (hr_prompt, {})
    hr_negative = params.hr_negative_prompt or params.negative_prompt
    return hires_plan(params, sampler, hr_sampler, hr_prompt, hr_negative), hr_tags, hr_hypernet_tags


def _sampler_name(params: GenerationParams) -> str:
    """A1111 takes sampler_index when sampler_name is not given; the seed's body fills both with "Euler a",
    so a sampler_index that differs from a default sampler_name is one an older client chose."""
    default = GenerationParams.model_fields["sampler_name"].default
    if params.sampler_name == default and params.sampler_index and params.sampler_index != default:
        return params.sampler_index
    return params.sampler_name


def _clip_skip(override_settings: dict[str, Any]) -> int | None:
    """A1111's CLIP_stop_at_last_layers (1 = last layer) as diffusers' clip_skip (layers skipped)."""
    value = override_settings.get("CLIP_stop_at_last_layers")
    if value is None:
        return None
    try:
        layers = int(value)
    except (TypeError, ValueError):
        raise RequestError(
            f"override_settings.CLIP_stop_at_last_layers must be a whole number, got {value!r}"
        ) from None
    if layers < 1:
        raise RequestError(f"override_settings.CLIP_stop_at_last_layers must be at least 1, got {layers}")
    return layers - 1 if layers > 1 else None


def _parameters_used(prepared: _Prepared) -> dict[str, Any]:
    """The parameters with the seeds actually used; input images are left out, as A1111 does."""
    parameters = prepared.params.model_dump(by_alias=True, mode="json")
    parameters["seed"] = prepared.plan.seeds.seed
    parameters["subseed"] = prepared.plan.seeds.subseed
    if parameters["init_images"]:
        parameters["init_images"] = None
    for unit in parameters["alwayson_scripts"]["controlnet"]["args"]:
        if unit["image"]:
            unit["image"] = None
    return parameters


def build_info(prepared: _Prepared, lora_names: list[str], lora_weights: list[float]) -> dict[str, Any]:
    """A1111's ``Processed.js()`` fields, with one infotext per image."""
    from sd_runtime.addons import model_stem

    params, plan = prepared.params, prepared.plan
    seeds = plan.seeds
    model_name = model_stem(prepared.checkpoint.name)
    count = len(seeds.all_seeds)
    infotexts = [
        _infotext(plan, params, model_name, seeds.all_seeds[i], seeds.all_subseeds[i], lora_names, lora_weights)
        for i in range(count)
    ]
    return {
        "prompt": params.prompt,
        "all_prompts": [params.prompt] * count,
        "negative_prompt": params.negative_prompt,
        "all_negative_prompts": [params.negative_prompt] * count,
        "seed": seeds.seed,
        "all_seeds": seeds.all_seeds,
        "subseed": seeds.subseed,
        "all_subseeds": seeds.all_subseeds,
        "subseed_strength": seeds.subseed_strength,
        "width": plan.width,
        "height": plan.height,
        "sampler_name": plan.sampler.name,
        "cfg_scale": plan.cfg_scale,
        "steps": plan.steps,
        "batch_size": plan.batch_size,
        "restore_faces": False,
        "sd_model_name": model_name,
        "seed_resize_from_w": plan.seed_resize_from[0],
        "seed_resize_from_h": plan.seed_resize_from[1],
        "denoising_strength": _denoising(plan),
        "extra_generation_params": _extra_params(plan, lora_names, lora_weights),
        "index_of_first_image": 0,
        "infotexts": infotexts,
        "styles": params.styles,
        "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.gmtime()),
        "clip_skip": (plan.clip_skip or 0) + 1,
        "is_using_inpainting_conditioning": False,
        "version": VERSION,
        "warnings": prepared.warnings,
    }


def _denoising(plan: Any) -> float | None:
    if plan.task == "img2img":
        return 0.75 if plan.denoising_strength is None else plan.denoising_strength
    return plan.hires.denoising if plan.hires else None


def _extra_params(plan: Any, lora_names: list[str], lora_weights: list[float]) -> dict[str, Any]:
    from sd_runtime.addons import model_stem

    extra: dict[str, Any] = {}
    if plan.hires:
        extra["Hires upscale"] = round(plan.hires.target[0] / plan.width, 4)
        extra["Hires resize"] = f"{plan.hires.target[0]}x{plan.hires.target[1]}"
        extra["Hires steps"] = plan.hires.steps
        extra["Hires upscaler"] = plan.hires.upscaler
        if plan.hires.sampler.name != plan.sampler.name:
            extra["Hires sampler"] = plan.hires.sampler.name
    if lora_names:
        extra["Lora weights"] = ", ".join(
            f"{model_stem(name)}: {weight:g}" for name, weight in zip(lora_names, lora_weights, strict=True)
        )
    if plan.hypernetworks:
        extra["Hypernet"] = ", ".join(model_stem(name) for name, _ in plan.hypernetworks)
        extra["Hypernet strength"] = ", ".join(f"{strength:g}" for _, strength in plan.hypernetworks)
    for unit in plan.control_units:
        extra[f"ControlNet {unit.index}"] = (
            f"Module: {unit.module}, Model: {unit.model_name}, Weight: {unit.weight:g}, "
            f"Guidance Start: {unit.guidance_start:g}, Guidance End: {unit.guidance_end:g}"
        )
    if plan.tiling:
        extra["Tiling"] = True
    return extra


def _infotext(
    plan: Any,
    params: GenerationParams,
    model_name: str,
    seed: int,
    subseed: int,
    lora_names: list[str],
    lora_weights: list[float],
) -> str:
    """A1111's "parameters" text: prompt, negative prompt, then ``Key: value`` pairs."""
    fields: dict[str, Any] = {
        "Steps": plan.steps,
        "Sampler": plan.sampler.name,
        "CFG scale": plan.cfg_scale,
        "Seed": seed,
        "Size": f"{plan.width}x{plan.height}",
        "Model": model_name,
    }
    if plan.seeds.subseed_strength > 0:
        fields["Variation seed"] = subseed
        fields["Variation seed strength"] = plan.seeds.subseed_strength
    if plan.seed_resize_from[0] > 0 and plan.seed_resize_from[1] > 0:
        fields["Seed resize from"] = f"{plan.seed_resize_from[0]}x{plan.seed_resize_from[1]}"
    denoising = _denoising(plan)
    if denoising is not None:
        fields["Denoising strength"] = denoising
    if plan.clip_skip:
        fields["Clip skip"] = plan.clip_skip + 1
    fields.update(_extra_params(plan, lora_names, lora_weights))
    fields["Version"] = VERSION
    text = params.prompt
    if params.negative_prompt:
        text += f"\nNegative prompt: {params.negative_prompt}"
    pairs = ", ".join(f"{key}: {json.dumps(value) if _needs_quotes(value) else value}" for key, value in fields.items())
    return f"{text}\n{pairs}"


def _needs_quotes(value: Any) -> bool:
    return isinstance(value, str) and ("," in value or ":" in value)
