"""A local SageMaker for the local stack: SageMaker's wire protocol; endpoints and training jobs as local processes."""
