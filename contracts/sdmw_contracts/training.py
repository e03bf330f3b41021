"""What training-manager asks of sd-runtime ``train`` through a SageMaker training job.

SageMaker runs the sd-runtime image with the ``train`` argument and the
``/opt/ml`` container contract:

- ``/opt/ml/input/config/hyperparameters.json``: ``TrainingHyperparameters``
  as SageMaker passes them, every value a string (``to_sagemaker`` /
  ``from_sagemaker``);
- ``/opt/ml/input/data/<channel>/``: the input channels below, copied from S3;
- ``/opt/ml/model/``: the result, uploaded by SageMaker to the job's output
  path (training-manager asks for ``CompressionType: NONE``, so the files land
  as they are under ``<S3OutputPath>/<job name>/output/model/``);
- ``/opt/ml/output/failure``: why the job failed, which SageMaker reports as
  the job's ``FailureReason``.

What each task leaves in ``/opt/ml/model/``:

- ``create-model``: the diffusers working model (``model_index.json``,
  ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``)
  converted from the base checkpoint in the ``model`` channel;
- ``dreambooth``: one ``<model_name>.safetensors``, the whole fine-tuned model
  (UNet, VAE, text encoder) as an A1111 single-file checkpoint (LDM key
  layout), which inference loads as a ``Stable-diffusion`` model by that name;
- ``lora``: one ``<model_name>.safetensors`` LoRA file that inference loads as
  a ``Lora`` model.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

TrainTask = Literal["create-model", "dreambooth", "lora"]

#: The base checkpoint (create-model: a single file, a diffusers folder, or a tar holding
#: ``models/Stable-diffusion/<file>``) or the working model to train from (a diffusers folder).
MODEL_CHANNEL = "model"
#: Instance images, each with an optional caption in ``<image stem>.txt`` beside it.
INSTANCE_CHANNEL = "instance"
#: Class images for DreamBooth's prior preservation (optional; missing ones are generated).
CLASS_CHANNEL = "class"
#: Files a client uploaded with the training job: the WebUI extension's ``db_config.tar``,
#: ``data-<dir>.tar`` (instance images of a concept) and ``class-data-<dir>.tar``.
UPLOAD_CHANNEL = "upload"

#: SageMaker's limit on one hyperparameter value.
MAX_HYPERPARAMETER_LENGTH = 2500
#: Prompts are bounded well inside that limit, whatever JSON escaping adds.
MAX_PROMPT_LENGTH = 1000
#: What the runtime prints per step, and the metric definition that reads it from the job's log.
LOSS_METRIC_REGEX = r"loss=([0-9.eE+-]+)"


class TrainingHyperparameters(BaseModel):
    """Everything a training job is told, typed; unknown keys are refused so nothing is silently dropped."""

    model_config = ConfigDict(extra="forbid")

    task: TrainTask
    model_name: str = Field(
        min_length=1, max_length=128, description="Names the output: the folder model or the LoRA file's stem."
    )
    # create-model
    extract_ema: bool = Field(default=False, description="Take the EMA weights of a single-file checkpoint.")
    # dreambooth and lora
    max_train_steps: int = Field(default=400, ge=1, le=100_000)
    learning_rate: float = Field(default=5e-6, gt=0, le=1)
    resolution: int = Field(default=512, ge=8, le=2048, multiple_of=8)
    train_batch_size: int = Field(default=1, ge=1, le=64)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=1024)
    instance_prompt: str = Field(
        default="", max_length=MAX_PROMPT_LENGTH, description="The caption of every instance image without a .txt."
    )
    class_prompt: str = Field(default="", max_length=MAX_PROMPT_LENGTH)
    with_prior_preservation: bool = False
    prior_loss_weight: float = Field(default=1.0, ge=0)
    num_class_images: int = Field(default=100, ge=0, le=10_000)
    train_text_encoder: bool = False
    lora_rank: int = Field(default=4, ge=1, le=256)
    lora_alpha: int | None = Field(default=None, ge=1, description="Defaults to lora_rank (a scale of 1).")
    seed: int | None = Field(default=None, ge=0)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    center_crop: bool = False
    config_params: dict[str, Any] = Field(
        default_factory=dict,
        description="DreamBooth-extension settings (db_config.json keys) sent through the API; "
        "they override the db_config a client uploaded.",
    )

    def to_sagemaker(self) -> dict[str, str]:
        """SageMaker's ``HyperParameters``: each value as JSON text, None left out."""
        return {key: json.dumps(value) for key, value in self.model_dump(mode="json").items() if value is not None}

    @classmethod
    def from_sagemaker(cls, raw: dict[str, str]) -> Self:
        """Read ``hyperparameters.json``; a value that is not JSON is taken as a plain string."""
        return cls.model_validate({key: _decode(value) for key, value in raw.items()})


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value
