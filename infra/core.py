"""The core stack: what every service shares. Declared once, rendered locally and in AWS."""

from service_kit.resources import CoreResources
from service_kit.sagemaker import ASYNC_ERROR_TOPIC, ASYNC_SUCCESS_TOPIC

#: SageMaker async inference posts its success and error notifications to the two topics; the services
#: that configure and read those notifications take the names from service_kit.sagemaker too.
CORE = CoreResources(bus="bus", bucket="bucket", topics=(ASYNC_SUCCESS_TOPIC, ASYNC_ERROR_TOPIC))
