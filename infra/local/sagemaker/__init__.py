"""A local SageMaker for the local stack: the SageMaker wire protocol, endpoints run as local processes."""
