"""endpoint-manager: deploys and deletes async SageMaker endpoints and follows their state."""

SERVICE = "endpoint-manager"
