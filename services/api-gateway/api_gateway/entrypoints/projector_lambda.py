"""AWS Lambda entrypoint of the read-model projector (SQS, partial batch failures), with Powertools."""

from api_gateway import SERVICE
from api_gateway.bootstrap import projector
from service_kit.lambda_entry import lambda_entry

_settings, _consumer = projector()

handler = lambda_entry(SERVICE, _consumer.handle_batch)
