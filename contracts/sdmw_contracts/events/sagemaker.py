"""Events AWS SageMaker puts on the default bus (source ``aws.sagemaker``).

Only the fields the services read are named; the rest are kept as they came.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

SAGEMAKER_SOURCE = "aws.sagemaker"


class SageMakerEndpointStateChange(BaseModel):
    """``detail`` of a "SageMaker Endpoint State Change" event."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    DETAIL_TYPE: ClassVar[str] = "SageMaker Endpoint State Change"

    EndpointName: str
    EndpointArn: str | None = None
    EndpointConfigName: str | None = None
    EndpointStatus: str
    FailureReason: str | None = None


class SageMakerTrainingJobStateChange(BaseModel):
    """``detail`` of a "SageMaker Training Job State Change" event.

    Unlike the endpoint events, ``TrainingJobStatus`` is spelled as the API
    spells it (``InProgress``, ``Completed``, ``Failed``, ``Stopping``, ``Stopped``).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    DETAIL_TYPE: ClassVar[str] = "SageMaker Training Job State Change"

    TrainingJobName: str
    TrainingJobStatus: str
    SecondaryStatus: str | None = None
    FailureReason: str | None = None
