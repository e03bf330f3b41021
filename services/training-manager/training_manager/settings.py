"""training-manager's settings: everything it reads from its environment (see service_kit.config)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from service_kit.config import ServiceSettings
from training_manager import SERVICE
from training_manager.sagemaker import TrainingSettings


class TrainingManagerSettings(ServiceSettings):
    service: ClassVar[str] = SERVICE

    sd_runtime_image: str
    sagemaker_role_arn: str
    model_creation_instance_type: str = "ml.g4dn.xlarge"
    max_runtime_s: int = Field(24 * 3600, validation_alias="TRAINING_MAX_RUNTIME_S")
    volume_size_gb: int = Field(100, validation_alias="TRAINING_VOLUME_SIZE_GB")

    def training(self) -> TrainingSettings:
        """What every training job shares."""
        return TrainingSettings(
            image_uri=self.sd_runtime_image,
            execution_role_arn=self.sagemaker_role_arn,
            model_creation_instance_type=self.model_creation_instance_type,
            max_runtime_s=self.max_runtime_s,
            volume_size_gb=self.volume_size_gb,
            # SageMaker gives a container only its job's Environment; the bus is where it reports progress.
            container_environment={"SDMW_BUCKET": self.bucket, "SDMW_EVENT_BUS": self.event_bus},
        )
