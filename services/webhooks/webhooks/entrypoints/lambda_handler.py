"""AWS Lambda entrypoint (SQS event source with ReportBatchItemFailures), with Powertools' logger and tracer."""

from service_kit.lambda_entry import lambda_entry
from webhooks import SERVICE
from webhooks.bootstrap import bootstrap

handler = lambda_entry(SERVICE, bootstrap().consumer.handle_batch)
