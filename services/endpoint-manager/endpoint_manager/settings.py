"""endpoint-manager's settings: everything it reads from its environment (see service_kit.config)."""

from __future__ import annotations

from typing import ClassVar

from endpoint_manager import SERVICE
from endpoint_manager.sagemaker import RuntimeSettings
from service_kit.config import ServiceSettings, topic_arn_field
from service_kit.sagemaker import ASYNC_ERROR_TOPIC, ASYNC_SUCCESS_TOPIC

#: sd-runtime's settings that the deployment chooses; every endpoint's container gets those that are set.
RUNTIME_SETTINGS_PASSED_ON = (
    "sd_runtime_caption_model",
    "sd_runtime_single_file_config",
    "sd_runtime_pipeline_cache",
    "sd_runtime_channels_last",
    "sd_runtime_compile_unet",
)


class EndpointManagerSettings(ServiceSettings):
    service: ClassVar[str] = SERVICE

    sd_runtime_image: str
    sagemaker_role_arn: str
    success_topic_arn: str = topic_arn_field(ASYNC_SUCCESS_TOPIC)
    error_topic_arn: str = topic_arn_field(ASYNC_ERROR_TOPIC)
    max_autoscaling_instances: int = 4
    sd_runtime_caption_model: str = ""
    sd_runtime_single_file_config: str = ""
    sd_runtime_pipeline_cache: str = ""
    #: Speed settings the GPU benchmark decides (sd-runtime's README, "Performance"); off unless set.
    sd_runtime_channels_last: str = ""
    sd_runtime_compile_unet: str = ""

    def container_environment(self) -> dict[str, str]:
        """What the container sees: SageMaker gives a container only its model's Environment, nothing else."""
        passed = {name.upper(): getattr(self, name) for name in RUNTIME_SETTINGS_PASSED_ON if getattr(self, name)}
        # SDMW_EVENT_BUS: where the runtime reports a job's progress (sd_runtime.progress).
        return {"SDMW_BUCKET": self.bucket, "SDMW_EVENT_BUS": self.event_bus, **passed}

    def runtime(self) -> RuntimeSettings:
        """What every endpoint's model and async config share."""
        return RuntimeSettings(
            image_uri=self.sd_runtime_image,
            execution_role_arn=self.sagemaker_role_arn,
            output_s3_uri=f"s3://{self.bucket}/sagemaker_output/",
            failure_s3_uri=f"s3://{self.bucket}/sagemaker_failure/",
            success_topic_arn=self.success_topic_arn,
            error_topic_arn=self.error_topic_arn,
            container_environment=self.container_environment(),
        )
