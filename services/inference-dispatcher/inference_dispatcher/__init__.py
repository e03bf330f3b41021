"""inference-dispatcher: runs inference jobs on async SageMaker endpoints and turns results into files."""

SERVICE = "inference-dispatcher"
