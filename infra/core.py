"""The core stack: what every service shares. Declared once, rendered locally and in AWS."""

from service_kit.resources import CoreResources

#: SageMaker async inference posts its success and error notifications here.
ASYNC_SUCCESS_TOPIC = "async-success"
ASYNC_ERROR_TOPIC = "async-error"

CORE = CoreResources(bus="bus", bucket="bucket", topics=(ASYNC_SUCCESS_TOPIC, ASYNC_ERROR_TOPIC))
