"""Routes 17-19 and 23-25: model-creation jobs and training jobs.

17. ``POST /model``
18. ``PUT /model``
19. ``GET /models``
23. ``POST /train``
24. ``PUT /train``
25. ``GET /trains``

Response keys are the seed's, mixed casing included (``statusCode``,
``s3PresignUrl``, ``trainJobs``, ``jobStatus``...). Where the seed's upload
answers carry no URL, the shape the WebUI extension indexes wins: ``POST
/model`` also answers ``s3PresignUrl`` at the top level as ``{file name: [part
URLs]}``, and ``POST /train`` answers ``{file name: URL}``.

Train types: the seed sends ``dreambooth``, the WebUI extension
``Stable-diffusion`` (DreamBooth) or ``Lora``; both spellings are accepted.
A job's ``trainType`` is the type of checkpoint it produces
(``Stable-diffusion`` or ``Lora``), which is what the extension filters on.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from sdmw_contracts.api.assets import MultipartFiles, MultiPartsTags, MultipartUpload
from sdmw_contracts.api.common import ApiModel, JsonObject, check_params_size, next_token_field
from sdmw_contracts.api.names import DatasetName, ObjectName, ResourceName, check_unique
from sdmw_contracts.api.webhooks import JobWebhookFields
from sdmw_contracts.events.progress import JobProgress

#: A model-creation job: waiting for its files, creating, finished or failed.
ModelJobStatus = Literal["Initialed", "Creating", "Created", "Complete", "Fail"]
#: What a client may set with ``PUT /model``: its files are uploaded, creation may start; or give up.
ModelJobUpdateStatus = Literal["Creating", "Fail"]
TrainJobStatus = Literal["Initialed", "Training", "Complete", "Fail"]
#: What a client may set with ``PUT /train``: its files are uploaded, training may start; or give up.
TrainJobUpdateStatus = Literal["Training", "Fail"]
#: ``train_type`` as clients spell it -> the training the runtime does.
TRAIN_TYPES: dict[str, str] = {
    "dreambooth": "dreambooth",
    "Stable-diffusion": "dreambooth",
    "lora": "lora",
    "Lora": "lora",
}
#: The training -> the type of checkpoint it produces (a job's ``trainType``).
PRODUCED_TYPE: dict[str, str] = {"dreambooth": "Stable-diffusion", "lora": "Lora"}

#: SageMaker instance type names, e.g. ``ml.g4dn.2xlarge``.
INSTANCE_TYPE_PATTERN = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")

_MODEL_ID_EXAMPLE = "c9f59ee7-0672-4fd1-8a45-8a494de8a48d"
_TRAIN_JOB_ID_EXAMPLE = "b5183dd3-0279-46ff-b64e-6cd687c0fe71"


def _check_unique_names(names: list[str]) -> list[str]:
    check_unique(names, "filenames")
    return names


UniqueObjectNames = Annotated[list[ObjectName], AfterValidator(_check_unique_names)]


# ---------------------------------------------------------------- routes 17-19


class CreateModelParams(ApiModel):
    """``params.create_model_params`` of ``POST /model``; other keys are kept as sent."""

    model_config = ConfigDict(extra="allow")

    new_model_name: ResourceName = Field(examples=["testmodelcreation01"])
    ckpt_path: ObjectName = Field(
        description="The checkpoint to start from (or a hub id when from_hub).",
        examples=["v1-5-pruned-emaonly.safetensors"],
    )
    from_hub: bool = False
    new_model_url: str = ""
    new_model_token: str = ""
    extract_ema: bool = False
    train_unfrozen: bool = False
    is_512: bool = True


class CreateModelJobParams(ApiModel):
    """``params`` of ``POST /model``; other keys (the extension's ``ckpt_from_cloud``,
    ``s3_ckpt_path``) are kept as sent; at most 200 KiB as JSON."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _fits_its_item(cls, data: Any) -> Any:
        return check_params_size(data) if isinstance(data, dict) else data

    create_model_params: CreateModelParams


class CreateModelRequest(ApiModel):
    """``POST /model``: start a model-creation job, and the uploads of its files if it has any.

    The base checkpoint is the uploaded file when ``filenames`` names one;
    otherwise the Active ``Stable-diffusion`` checkpoint ``checkpoint_id``
    names (the WebUI extension's form), or the one whose file name (or folder
    model name) is ``params.create_model_params.ckpt_path``.
    """

    model_type: Literal["Stable-diffusion"] = Field(examples=["Stable-diffusion"])
    name: ResourceName = Field(examples=["testmodelcreation01"])
    checkpoint_id: str | None = Field(default=None, max_length=128, examples=["906a5a1f-6833-45aa-8a10-fb0e983e0eae"])
    filenames: MultipartFiles = Field(default_factory=list, max_length=1)
    params: CreateModelJobParams


class CreatedModelJob(ApiModel):
    id: str = Field(examples=[_MODEL_ID_EXAMPLE])
    status: ModelJobStatus = Field(examples=["Initialed"])
    s3_base: str = Field(examples=["s3://S3_Location"])
    model_type: str = Field(examples=["Stable-diffusion"])
    params: JsonObject = Field(default_factory=dict)
    s3PresignUrl: list[MultipartUpload] = Field(default_factory=list)


class CreateModelResponse(ApiModel):
    statusCode: int = 200
    job: CreatedModelJob
    s3PresignUrl: dict[str, list[str]] = Field(
        default_factory=dict, description="File name -> one presigned PUT URL per part (the extension's shape)."
    )


class UpdateModelRequest(ApiModel):
    """``PUT /model``: finish the uploads and start creating the model."""

    model_id: str = Field(min_length=1, max_length=128, examples=[_MODEL_ID_EXAMPLE])
    status: ModelJobUpdateStatus = Field(examples=["Creating"])
    multi_parts_tags: MultiPartsTags = Field(
        default_factory=dict,
        description="File name -> the parts uploaded for it.",
        examples=[
            {"v1-5-pruned-emaonly.safetensors.tar": [{"ETag": "cc95c41fa28463c8e9b88d67805f24e0", "PartNumber": 1}]}
        ],
    )


class UpdatedModelJob(ApiModel):
    output_path: str = Field(examples=["s3://S3_Location"])
    id: str = Field(examples=[_MODEL_ID_EXAMPLE])
    endpointName: str | None = Field(default=None, examples=["endpoint_name"])
    jobStatus: ModelJobStatus = Field(examples=["Created"])
    jobType: str = Field(examples=["Stable-diffusion"])


class UpdateModelResponse(ApiModel):
    statusCode: int = 200
    job: UpdatedModelJob


class ModelView(ApiModel):
    id: str = Field(examples=[_MODEL_ID_EXAMPLE])
    model_name: str = Field(examples=["testmodelcreation01"])
    created: int = Field(description="Seconds since the epoch.", examples=[12341234])
    params: JsonObject = Field(default_factory=dict)
    status: ModelJobStatus = Field(examples=["Initialed"])
    output_s3_location: str = Field(examples=["s3://S3_LOCATION/"])


class ListModelsResponse(ApiModel):
    statusCode: int = 200
    models: list[ModelView] = Field(default_factory=list)
    next_token: str | None = next_token_field()


# ---------------------------------------------------------------- routes 23-25


class TrainParams(ApiModel):
    """``params.train_params`` (the seed) or ``params.training_params`` (the WebUI extension).

    The training settings themselves (``max_train_steps``, ``learning_rate``,
    ``resolution``, ``train_batch_size``, ``instance_prompt``,
    ``class_prompt``, ``with_prior_preservation``, ``prior_loss_weight``,
    ``num_class_images``, ``train_text_encoder``, ``lora_rank``,
    ``lora_alpha``, ``seed``, ``mixed_precision``, ``center_crop``,
    ``gradient_accumulation_steps``) are checked against
    ``sdmw_contracts.training.TrainingHyperparameters``, whose bounds they
    share; other keys (the extension's ``s3_model_path``, ``data_tar_list``...)
    are kept as sent.
    """

    model_config = ConfigDict(extra="allow")

    training_instance_type: str | None = Field(default=None, examples=["ml.g4dn.2xlarge"])
    dataset_names: list[DatasetName] = Field(
        default_factory=list, max_length=8, description="Enabled datasets of instance images (and .txt captions)."
    )
    class_dataset_names: list[DatasetName] = Field(
        default_factory=list, max_length=8, description="Enabled datasets of class images for prior preservation."
    )
    output_name: ResourceName | None = Field(
        default=None, description="Name of the trained checkpoint; default <model name>-<first 8 of the job id>."
    )

    @field_validator("training_instance_type")
    @classmethod
    def _instance_type(cls, value: str | None) -> str | None:
        if value is not None and not INSTANCE_TYPE_PATTERN.fullmatch(value):
            raise ValueError("training_instance_type must be a SageMaker instance type such as ml.g4dn.2xlarge")
        return value


class TrainJobParams(ApiModel):
    """``params`` of ``POST /train``; other keys are kept as sent; at most 200 KiB as JSON."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _fits_its_item(cls, data: Any) -> Any:
        return check_params_size(data) if isinstance(data, dict) else data

    train_params: TrainParams | None = None
    training_params: TrainParams | None = Field(default=None, description="The WebUI extension's name for it.")
    config_params: JsonObject = Field(
        default_factory=dict, description="DreamBooth-extension settings (db_config.json keys)."
    )

    def settings(self) -> dict[str, Any]:
        """The training settings as sent: ``train_params`` over ``training_params``."""
        merged: dict[str, Any] = {}
        for part in (self.training_params, self.train_params):
            if part is not None:
                merged.update(part.model_dump(exclude_unset=True))
        return merged


class CreateTrainJobRequest(JobWebhookFields):
    """``POST /train``: a training job on a Complete model, and presigned URLs for its input files.

    ``webhook`` and ``webhook_events_filter`` (beyond the seed) name where the job's changes are also sent.
    """

    train_type: str = Field(examples=["dreambooth"], description="dreambooth or Stable-diffusion; lora or Lora.")
    model_id: str = Field(min_length=1, max_length=128, examples=["36c9d05e-3445-42a6-8be1-d7d054df7b9d"])
    params: TrainJobParams = Field(default_factory=TrainJobParams)
    filenames: UniqueObjectNames = Field(
        default_factory=list, max_length=64, examples=[["training_config.json", "images.tar"]]
    )

    @field_validator("train_type")
    @classmethod
    def _train_type(cls, value: str) -> str:
        if value not in TRAIN_TYPES:
            raise ValueError(f"train_type must be one of {', '.join(TRAIN_TYPES)}")
        return value

    @property
    def training(self) -> str:
        """``dreambooth`` or ``lora``."""
        return TRAIN_TYPES[self.train_type]


class CreatedTrainJob(ApiModel):
    id: str = Field(examples=[_TRAIN_JOB_ID_EXAMPLE])
    status: TrainJobStatus = Field(examples=["Initialed"])
    trainType: str = Field(examples=["Stable-diffusion"])
    params: JsonObject = Field(default_factory=dict)
    input_location: str = Field(examples=["s3://S3_Location"])


class CreateTrainJobResponse(ApiModel):
    """``s3PresignUrl``: ``{file name: presigned PUT URL}`` for each requested file (the extension's shape)."""

    statusCode: int = 200
    job: CreatedTrainJob
    s3PresignUrl: dict[str, str] = Field(default_factory=dict, examples=[{"images.tar": "https://..."}])


class UpdateTrainJobRequest(ApiModel):
    """``PUT /train``: ``Training`` once the input files are uploaded; ``Fail`` to give up."""

    train_job_id: str = Field(min_length=1, max_length=128, examples=[_TRAIN_JOB_ID_EXAMPLE])
    status: TrainJobUpdateStatus = Field(examples=["Training"])


class UpdatedTrainJob(ApiModel):
    id: str = Field(examples=[_TRAIN_JOB_ID_EXAMPLE])
    status: TrainJobStatus = Field(examples=["Training"])
    created: int = Field(description="Seconds since the epoch.", examples=[12341234])
    trainType: str = Field(examples=["Stable-diffusion"])
    params: JsonObject = Field(default_factory=dict)
    input_location: str = Field(examples=["s3://S3_Location"])


class UpdateTrainJobResponse(ApiModel):
    statusCode: int = 200
    job: UpdatedTrainJob


class TrainJobView(ApiModel):
    id: str = Field(examples=[_TRAIN_JOB_ID_EXAMPLE])
    modelName: str = Field(examples=["model_name"])
    status: TrainJobStatus = Field(examples=["Complete"])
    trainType: str = Field(examples=["Stable-diffusion"])
    created: int = Field(description="Seconds since the epoch.", examples=[1234124])
    sagemakerTrainName: str | None = Field(default=None, examples=["sagemaker_train_name"])
    output_name: str | None = Field(default=None, description="The trained checkpoint's name.")
    checkpoint_id: str | None = Field(default=None, description="The trained checkpoint, once registered.")
    error: str | None = Field(default=None, description="Why the job failed.")
    progress: JobProgress | None = Field(
        default=None, description="The training container's latest report (step, loss, ETA...); null before it."
    )


class CancelTrainJobResponse(ApiModel):
    """``POST /trains/{id}/cancel``: accepted; the job as ``GET /trains`` shows it (``Fail``, error
    ``cancelled``, once SageMaker has stopped it)."""

    statusCode: int = 202
    job: TrainJobView


class ListTrainJobsResponse(ApiModel):
    statusCode: int = 200
    trainJobs: list[TrainJobView] = Field(default_factory=list)
    next_token: str | None = next_token_field()
