"""training-manager: model creation and DreamBooth/LoRA training as SageMaker training jobs."""

SERVICE = "training-manager"
