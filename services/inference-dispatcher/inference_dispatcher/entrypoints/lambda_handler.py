"""AWS Lambda entrypoint (SQS event source with ReportBatchItemFailures), with Powertools' logger and tracer."""

from inference_dispatcher import SERVICE
from inference_dispatcher.bootstrap import bootstrap
from service_kit.lambda_entry import lambda_entry

handler = lambda_entry(SERVICE, bootstrap().consumer.handle_batch)
