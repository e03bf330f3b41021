"""Thin entrypoints: the Lambda SQS handler and the local worker run the same consumer."""
