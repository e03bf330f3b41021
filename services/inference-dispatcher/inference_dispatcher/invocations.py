"""Turning a user's request into what sd-runtime is sent, with every model resolved to S3."""

from __future__ import annotations

from typing import Any

from inference_dispatcher.lookups import Lookups
from sdmw_contracts.events.inference import result_prefix
from sdmw_contracts.runtime import InvocationRequest, MergeSpec, ModelRef

BASE = "Stable-diffusion"


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def controlnet_names(payload: dict[str, Any]) -> list[str]:
    """ControlNet models named by enabled units of alwayson_scripts.controlnet, and by models["ControlNet"]."""
    units = payload.get("alwayson_scripts", {}).get("controlnet", {}).get("args", [])
    named = [u.get("model", "None") for u in units if u.get("enabled")]
    return _unique([n for n in named if n and n != "None"] + list(payload.get("models", {}).get("ControlNet", [])))


def generation_request(job_id: str, task: str, payload: dict[str, Any], lookups: Lookups) -> InvocationRequest:
    models = payload.get("models", {})
    return InvocationRequest(
        inference_id=job_id,
        task=task,
        checkpoint=lookups.model(BASE, models[BASE][0]),
        loras=[lookups.model("Lora", name) for name in _unique(models.get("Lora", []))],
        embeddings=[lookups.model("embeddings", name) for name in _unique(models.get("embeddings", []))],
        controlnets=[lookups.model("ControlNet", name) for name in controlnet_names(payload)],
        payload=payload,
    )


def merge_request(job_id: str, payload: dict[str, Any], lookups: Lookups, bucket: str) -> InvocationRequest:
    def base(name: str | None) -> ModelRef | None:
        return lookups.model(BASE, name) if name else None

    output_name = payload.get("custom_name") or f"merged-{job_id[:8]}.safetensors"
    if not output_name.endswith(".safetensors"):
        output_name += ".safetensors"
    return InvocationRequest(
        inference_id=job_id,
        task="merge",
        payload=payload,
        merge=MergeSpec(
            primary=base(payload["primary_model_name"]),
            secondary=base(payload["secondary_model_name"]),
            tertiary=base(payload.get("tertiary_model_name")),
            method=payload.get("interp_method", "Weighted sum"),
            multiplier=payload.get("multiplier", 0.3),
            output_s3_uri=f"s3://{bucket}/{result_prefix(job_id)}{output_name}",
        ),
    )


def is_interrogation(task: str) -> bool:
    return task.startswith("interrogate")


def interrogation_request(job_id: str, task: str, payload: dict[str, Any]) -> InvocationRequest:
    """A1111's interrogate body (``image``) for the runtime's own caption model: no model to resolve."""
    return InvocationRequest(inference_id=job_id, task=task, payload=payload)
