"""asset-registry: checkpoints and datasets, their uploads to S3 and their verification."""

SERVICE = "asset-registry"
