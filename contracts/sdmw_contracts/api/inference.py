"""Routes 1-6 and 16: inference jobs and model merge.

1. ``GET /inference/test-connection``
2. ``GET /inference/list-inference-jobs``
3. ``GET /inference/get-inference-job?jobID=...``
4. ``GET /inference/get-inference-job-image-output?jobID=...``
5. ``GET /inference/get-inference-job-param-output?jobID=...``
6. ``POST /inference-api/inference``
16. ``POST /inference/run-model-merge``

and a job's lifecycle: ``POST /inference/{job_id}/cancel``, ``DELETE /inference/{job_id}``.

Route 1 answers JSON ``null`` in the seed, so it has no model here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from sdmw_contracts.api.common import MAX_NEXT_TOKEN_CHARS, ApiModel, JsonObject
from sdmw_contracts.api.endpoints import ENDPOINT_NAME_PATTERN, ENDPOINT_NAME_SCHEMA_PATTERN
from sdmw_contracts.api.names import ObjectName
from sdmw_contracts.api.webhooks import JobWebhookFields
from sdmw_contracts.events.progress import JobProgress
from sdmw_contracts.generation import GenerationParams

InferenceTaskType = Literal["txt2img", "img2img"]
#: Task types an inference job can show: a model merge runs on an endpoint as an inference job, and so
#: does the extension's interrogation of an image (``run-sagemaker-inference``).
InferenceJobTaskType = Literal["txt2img", "img2img", "merge", "interrogate_clip", "interrogate_deepbooru"]
InferenceJobStatus = Literal["inprogress", "succeed", "failed", "cancelled"]
#: What ``POST /inference-api/inference`` answers: a job either started or was refused at once.
InferenceStartStatus = Literal["inprogress", "failed"]

#: The checkpoint types a request's ``models`` may name (the keys of ``models``).
MODEL_TYPES: tuple[str, ...] = ("Stable-diffusion", "Lora", "embeddings", "hypernetworks", "ControlNet", "VAE")
BASE_MODEL_TYPE = "Stable-diffusion"

MergeMethod = Literal["Weighted sum", "Add difference"]


def seed_complete_time(value: datetime | None) -> str | None:
    """The seed's ``completeTime`` format: ``2023-07-04-09-14-26`` (UTC, seconds)."""
    if value is None:
        return None
    return value.replace(tzinfo=None).strftime("%Y-%m-%d-%H-%M-%S")


#: What the document shows of the endpoint name rule ("" too where it means "none").
_ENDPOINT_NAME = {"pattern": ENDPOINT_NAME_PATTERN.pattern, "maxLength": 63}
_OPTIONAL_ENDPOINT_NAME = {"pattern": ENDPOINT_NAME_SCHEMA_PATTERN, "maxLength": 63}


def _check_endpoint_name(value: str) -> str:
    if not ENDPOINT_NAME_PATTERN.fullmatch(value):
        raise ValueError("must be 1-63 letters, digits or hyphens, starting with a letter or digit")
    return value


class _OmitsNoError(ApiModel):
    """A view whose ``error`` key appears only when there is an error, as in the seed."""

    #: Keys left out of the JSON while None (a subclass may add its own).
    _omitted_when_none: ClassVar[tuple[str, ...]] = ("error",)

    error: str | None = Field(default=None, description="Why the job failed; absent unless it failed.")

    @model_serializer(mode="wrap")
    def _omit_absent_error(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in self._omitted_when_none:
                value = data.pop(key, None)
                if value is not None:
                    data[key] = value
        return data


class InferenceRequest(GenerationParams, JobWebhookFields):
    """``POST /inference-api/inference``: txt2img or img2img on an async endpoint.

    ``sagemaker_endpoint_name``, ``task_type``, ``prompt`` and
    ``models["Stable-diffusion"]`` are required; every other field has the
    default the seed documents. img2img also needs ``init_images``.
    ``webhook`` and ``webhook_events_filter`` (beyond the seed) name where the job's changes are also sent.
    """

    sagemaker_endpoint_name: str = Field(json_schema_extra=_ENDPOINT_NAME, examples=["infer-endpoint-cb821ea"])
    task_type: InferenceTaskType = Field(examples=["txt2img"])
    models: dict[str, list[ObjectName]] = Field(
        description="Checkpoint type -> checkpoint names; Stable-diffusion is required.",
        examples=[
            {
                "Stable-diffusion": ["v1-5-pruned-emaonly.safetensors"],
                "Lora": ["raidenshogun1-000009.safetensors"],
            }
        ],
    )

    @field_validator("sagemaker_endpoint_name")
    @classmethod
    def _endpoint_name(cls, value: str) -> str:
        return _check_endpoint_name(value)

    @field_validator("models")
    @classmethod
    def _models(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = [key for key in value if key not in MODEL_TYPES]
        if unknown:
            raise ValueError(f"unknown model type(s) {', '.join(unknown)}; known: {', '.join(MODEL_TYPES)}")
        if not value.get(BASE_MODEL_TYPE):
            raise ValueError(f'models["{BASE_MODEL_TYPE}"] must name at least one checkpoint')
        return value

    @model_validator(mode="after")
    def _img2img_needs_images(self) -> InferenceRequest:
        if self.task_type == "img2img" and not self.init_images:
            raise ValueError("init_images must hold at least one base64 image when task_type is img2img")
        return self

    @model_validator(mode="after")
    def _hires_size(self) -> InferenceRequest:
        if self.task_type == "txt2img" and (problem := self.hires_problem()):
            raise ValueError(problem)
        return self

    def generation_params(self) -> GenerationParams:
        """The generation parameters alone, as the command and the runtime carry them (already valid)."""
        fields = GenerationParams.model_fields
        values = {name: getattr(self, name) for name in fields}
        return GenerationParams.model_construct(self.model_fields_set & set(fields), **values)


class InferenceResponse(_OmitsNoError):
    """What ``POST /inference-api/inference`` answers."""

    inference_id: str = Field(examples=["1f9679f3-25b8-4c44-8345-0a845da30094"])
    status: InferenceStartStatus = Field(examples=["inprogress"])
    endpoint_name: str = Field(examples=["infer-endpoint-cb821ea"])
    output_path: str | None = Field(
        default=None, description="Where the async result will land.", examples=["path_of_prediction_output"]
    )


# ---------------------------------------------------------------- routes 2-5


class InferenceJobView(_OmitsNoError):
    """One inference job as list-inference-jobs and get-inference-job show it.

    ``startTime`` uses :func:`~sdmw_contracts.api.common.seed_time`,
    ``completeTime`` uses :func:`seed_complete_time` (the seed's two formats).
    """

    inference_info_name: str | None = Field(
        default=None, examples=["/tmp/1f9679f3-25b8-4c44-8345-0a845da30094_param.json"]
    )
    startTime: str = Field(examples=["2023-07-05 06:38:45.752740"])
    taskType: InferenceJobTaskType = Field(examples=["txt2img"])
    completeTime: str | None = Field(default=None, examples=["2023-07-05-06-38-49"])
    InferenceJobId: str = Field(examples=["1f9679f3-25b8-4c44-8345-0a845da30094"])
    status: InferenceJobStatus = Field(examples=["succeed"])
    sagemakerRaw: str = Field(default="", description="SageMaker's async notification, as text.")
    image_names: list[str] = Field(default_factory=list, examples=[["image_0.jpg"]])
    caption: str | None = Field(
        default=None,
        description='What an interrogate_clip/interrogate_deepbooru job found ("" until it succeeded); '
        "absent for other jobs.",
        examples=["a cat sitting on a couch"],
    )
    progress: JobProgress | None = Field(
        default=None,
        description="How far the job got, as the runtime last reported it; absent before its first report "
        "(so a job's view keeps the seed's keys until then).",
    )

    _omitted_when_none: ClassVar[tuple[str, ...]] = ("error", "caption", "progress")


class InferenceJobDeleted(ApiModel):
    """What ``DELETE /inference/{job_id}`` answers once the job and its files are gone."""

    id: str = Field(examples=["1f9679f3-25b8-4c44-8345-0a845da30094"])
    deleted: bool = True


# ---------------------------------------------------------------- route 16


class ModelMergeRequest(JobWebhookFields):
    """``POST /inference/run-model-merge``: merge two or three Stable Diffusion checkpoints.

    The seed documents no body; these are the checkpoint merger's inputs.
    ``interp_method`` is also accepted as ``merge_method``. The merge runs on
    an in-service endpoint: the one named, or any when none is. ``webhook`` and
    ``webhook_events_filter`` name where the job's changes are also sent.
    """

    primary_model_name: ObjectName = Field(examples=["v1-5-pruned-emaonly.safetensors"])
    secondary_model_name: ObjectName = Field(examples=["dreamshaper_8.safetensors"])
    tertiary_model_name: ObjectName | None = Field(default=None, examples=["v1-5-inpainting.safetensors"])
    interp_method: MergeMethod = Field(
        default="Weighted sum",
        validation_alias=AliasChoices("interp_method", "merge_method"),
        examples=["Weighted sum", "Add difference"],
    )
    multiplier: float = Field(default=0.3, ge=0, le=1, description="Weight of the secondary model (0..1).")
    custom_name: ObjectName | None = Field(default=None, description="Name of the merged checkpoint.")
    checkpoint_format: Literal["safetensors", "ckpt"] = "safetensors"
    save_as_half: bool = False
    sagemaker_endpoint_name: str | None = Field(
        default=None, json_schema_extra=_OPTIONAL_ENDPOINT_NAME, examples=["infer-endpoint-cb821ea"]
    )

    @field_validator("tertiary_model_name", "custom_name", "sagemaker_endpoint_name", mode="before")
    @classmethod
    def _empty_is_unused(cls, value: Any) -> Any:
        """The WebUI extension sends "" for a model or option it does not use."""
        return None if value == "" else value

    @field_validator("sagemaker_endpoint_name")
    @classmethod
    def _endpoint_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_endpoint_name(value)

    @model_validator(mode="after")
    def _add_difference_needs_tertiary(self) -> ModelMergeRequest:
        if self.interp_method == "Add difference" and not self.tertiary_model_name:
            raise ValueError("interp_method 'Add difference' needs tertiary_model_name")
        return self


class ModelMergeResponse(ApiModel):
    """What ``POST /inference/run-model-merge`` answers.

    The seed shows the three model names; ``inference_id`` and ``status`` are
    added so the merge can be followed with get-inference-job.
    """

    primary_model_name: str = Field(examples=["primary_model_name"])
    secondary_model_name: str = Field(examples=["secondary_model_name"])
    tertiary_model_name: str | None = Field(default=None, examples=["teritary_model_name"])
    inference_id: str = Field(examples=["1f9679f3-25b8-4c44-8345-0a845da30094"])
    status: InferenceStartStatus = Field(examples=["inprogress"])


# ---------------------------------------------------------------- the original system's routes beyond the seed
#
# The WebUI extension runs inference in three steps (``POST /inference/v2``, a PUT of the
# A1111 parameters to the URL it answers, ``PUT /inference/v2/{id}/run``), lists jobs with
# ``POST /inference/query-inference-jobs``, and its older version posts to
# ``/inference/run-sagemaker-inference`` with the parameters uploaded to ``config/aigc.json``.


def _check_models(value: dict[str, list[str]]) -> dict[str, list[str]]:
    return InferenceRequest._models(value)


class InferenceV2Request(ApiModel):
    """``POST /inference/v2`` (and the body of ``PUT /inference/v2/{id}/run``)."""

    sagemaker_endpoint_name: str = Field(json_schema_extra=_ENDPOINT_NAME, examples=["infer-endpoint-cb821ea"])
    task_type: InferenceTaskType = Field(examples=["txt2img"])
    models: dict[str, list[ObjectName]] = Field(examples=[{"Stable-diffusion": ["v1-5-pruned-emaonly.safetensors"]}])
    filters: JsonObject = Field(default_factory=dict, examples=[{"creator": "me"}])

    @field_validator("sagemaker_endpoint_name")
    @classmethod
    def _endpoint_name(cls, value: str) -> str:
        return _check_endpoint_name(value)

    @field_validator("models")
    @classmethod
    def _models(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _check_models(value)


class CreatedInferenceV2(ApiModel):
    id: str = Field(examples=["1f9679f3-25b8-4c44-8345-0a845da30094"])
    type: InferenceTaskType
    status: Literal["created"] = "created"
    endpoint_name: str
    models: dict[str, list[str]]
    api_params_s3_location: str = Field(description="Where the A1111 parameters go (s3://...).")
    api_params_s3_upload_url: str = Field(description="Presigned PUT URL for the A1111 parameters, as JSON.")


class InferenceV2Response(ApiModel):
    statusCode: int = 200
    inference: CreatedInferenceV2


class InferenceV2RunResponse(ApiModel):
    """``PUT /inference/v2/{id}/run``: the job as ``/inference-api/inference`` answers it."""

    statusCode: int = 200
    inference: InferenceResponse


class RefusedInference(ApiModel):
    """``POST /inference/v2``'s refusal, in the shape the WebUI extension shows: answered with HTTP 200
    (it raises on any HTTP error), ``status`` other than 200 (400: it cannot run; 422: the body is not a
    valid request), and ``error``, the messages (it joins them with ", ")."""

    statusCode: int = Field(examples=[400])
    status: int = Field(examples=[400])
    error: list[str] = Field(
        examples=[["no Active checkpoint for: v1-5-pruned-emaonly.safetensors (Stable-diffusion)"]]
    )


class QueryInferenceJobsRequest(ApiModel):
    """``POST /inference/query-inference-jobs``: every filter may be absent or empty.

    Times are ISO 8601 (``2023-07-05T06:38:45``, ``2023-07-05 06:38:45``) or epoch
    seconds; ``checkpoint`` matches any model name the job used.
    """

    status: str | None = Field(default=None, max_length=32, examples=["succeed"])
    task_type: str | None = Field(default=None, max_length=32, examples=["txt2img"])
    start_time: datetime | None = Field(default=None, description="Jobs started at or after this.")
    end_time: datetime | None = Field(default=None, description="Jobs started at or before this.")
    endpoint: str | None = Field(default=None, max_length=63)
    checkpoint: str | None = Field(default=None, max_length=1024)
    limit: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description='At most this many jobs; -1 (the extension\'s "Show All"), '
        "0, null or absent: no count (a page still ends where one AWS Lambda response would be full).",
    )
    next_token: str | None = Field(
        default=None,
        max_length=MAX_NEXT_TOKEN_CHARS,
        description="The `x-next-token` header of the previous page, sent with the same filters: go on after it.",
    )

    @field_validator(
        "status", "task_type", "endpoint", "checkpoint", "start_time", "end_time", "limit", "next_token", mode="before"
    )
    @classmethod
    def _empty_is_absent(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("limit", mode="before")
    @classmethod
    def _no_limit(cls, value: Any) -> Any:
        """The WebUI extension's "Show All" sends ``limit: -1``."""
        return None if value in (-1, 0, "-1", "0") else value


class RunSageMakerInferenceRequest(ApiModel):
    """``POST /inference/run-sagemaker-inference`` (the extension's v1.0 path).

    The A1111 parameters were uploaded to ``config/aigc.json`` beforehand; this
    body names the endpoint and the checkpoints.
    """

    model_config = ConfigDict(extra="allow")

    task_type: Literal["txt2img", "img2img", "interrogate_clip", "interrogate_deepbooru"]
    sagemaker_endpoint: str = Field(json_schema_extra=_ENDPOINT_NAME, examples=["infer-endpoint-cb821ea"])
    models: dict[str, list[ObjectName]] = Field(default_factory=dict)

    @field_validator("sagemaker_endpoint")
    @classmethod
    def _endpoint_name(cls, value: str) -> str:
        return _check_endpoint_name(value)
