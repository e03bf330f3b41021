"""The 29 routes of the seed API with the models of their bodies, queries and answers.

Paths are given without the stage prefix (``/prod``). Every route needs the
``x-api-key`` header. ``response`` is ``None`` where the seed answers JSON
``null``. Route 29 has a second row for ``/dataset/{dataset_name}/data``, the
path the deployed middleware served beside the documented one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, RootModel

from sdmw_contracts.api.assets import (
    CatalogueList,
    CreateCheckpointRequest,
    CreateCheckpointResponse,
    CreateDatasetRequest,
    CreateDatasetResponse,
    DatasetDataResponse,
    DatasetPath,
    ListCheckpointsQuery,
    ListCheckpointsResponse,
    ListDatasetsQuery,
    ListDatasetsResponse,
    PresignedUploadQuery,
    PresignedUploadUrl,
    UpdateCheckpointRequest,
    UpdateCheckpointResponse,
    UpdateDatasetRequest,
    UpdateDatasetResponse,
)
from sdmw_contracts.api.endpoints import (
    DeleteEndpointsRequest,
    DeployEndpointRequest,
    EndpointDeploymentJobView,
    GetEndpointDeploymentJobQuery,
)
from sdmw_contracts.api.inference import (
    GetInferenceJobQuery,
    InferenceJobList,
    InferenceJobOutputQuery,
    InferenceJobView,
    InferenceRequest,
    InferenceResponse,
    ModelMergeRequest,
    ModelMergeResponse,
    PresignedUrlList,
)
from sdmw_contracts.api.training import (
    CreateModelRequest,
    CreateModelResponse,
    CreateTrainJobRequest,
    CreateTrainJobResponse,
    ListModelsQuery,
    ListModelsResponse,
    ListTrainJobsQuery,
    ListTrainJobsResponse,
    UpdateModelRequest,
    UpdateModelResponse,
    UpdateTrainJobRequest,
    UpdateTrainJobResponse,
)

HttpMethod = Literal["GET", "POST", "PUT"]


class EndpointDeploymentJobList(RootModel[list[EndpointDeploymentJobView]]):
    """``GET /inference/list-endpoint-deployment-jobs``: a JSON array of jobs."""


@dataclass(frozen=True)
class Route:
    """One route: where it answers and the models of what goes in and out."""

    index: int
    method: HttpMethod
    path: str
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    #: True for a second path of the same route (only route 29 has one).
    alias: bool = False

    def models(self) -> tuple[type[BaseModel], ...]:
        """The models this route names."""
        return tuple(m for m in (self.body, self.query, self.path_params, self.response) if m is not None)


ROUTES: tuple[Route, ...] = (
    Route(1, "GET", "/inference/test-connection", "Test the connection and the API key."),
    Route(2, "GET", "/inference/list-inference-jobs", "List all inference jobs.", response=InferenceJobList),
    Route(
        3,
        "GET",
        "/inference/get-inference-job",
        "Get one inference job.",
        query=GetInferenceJobQuery,
        response=InferenceJobView,
    ),
    Route(
        4,
        "GET",
        "/inference/get-inference-job-image-output",
        "Presigned URLs of an inference job's images.",
        query=InferenceJobOutputQuery,
        response=PresignedUrlList,
    ),
    Route(
        5,
        "GET",
        "/inference/get-inference-job-param-output",
        "Presigned URL of an inference job's parameter file.",
        query=InferenceJobOutputQuery,
        response=PresignedUrlList,
    ),
    Route(
        6,
        "POST",
        "/inference-api/inference",
        "Start a txt2img or img2img inference job.",
        body=InferenceRequest,
        response=InferenceResponse,
    ),
    Route(
        7,
        "POST",
        "/inference/deploy-sagemaker-endpoint",
        "Deploy a SageMaker endpoint.",
        body=DeployEndpointRequest,
    ),
    Route(
        8,
        "POST",
        "/inference/delete-sagemaker-endpoint",
        "Delete SageMaker endpoints.",
        body=DeleteEndpointsRequest,
    ),
    Route(
        9,
        "GET",
        "/inference/list-endpoint-deployment-jobs",
        "List all endpoint deployment jobs.",
        response=EndpointDeploymentJobList,
    ),
    Route(
        10,
        "GET",
        "/inference/get-endpoint-deployment-job",
        "Get one endpoint deployment job.",
        query=GetEndpointDeploymentJobQuery,
        response=EndpointDeploymentJobView,
    ),
    Route(
        11,
        "GET",
        "/inference/generate-s3-presigned-url-for-uploading",
        "A presigned URL to upload one object.",
        query=PresignedUploadQuery,
        response=PresignedUploadUrl,
    ),
    Route(12, "GET", "/inference/get-texual-inversion-list", "List textual inversions.", response=CatalogueList),
    Route(13, "GET", "/inference/get-lora-list", "List LoRA models.", response=CatalogueList),
    Route(14, "GET", "/inference/get-hypernetwork-list", "List hypernetworks.", response=CatalogueList),
    Route(15, "GET", "/inference/get-controlnet-model-list", "List ControlNet models.", response=CatalogueList),
    Route(
        16,
        "POST",
        "/inference/run-model-merge",
        "Merge checkpoints.",
        body=ModelMergeRequest,
        response=ModelMergeResponse,
    ),
    Route(17, "POST", "/model", "Create a model.", body=CreateModelRequest, response=CreateModelResponse),
    Route(
        18,
        "PUT",
        "/model",
        "Finish a model's uploads and start creating it.",
        body=UpdateModelRequest,
        response=UpdateModelResponse,
    ),
    Route(19, "GET", "/models", "List models.", query=ListModelsQuery, response=ListModelsResponse),
    Route(
        20,
        "POST",
        "/checkpoint",
        "Create a checkpoint and start its uploads.",
        body=CreateCheckpointRequest,
        response=CreateCheckpointResponse,
    ),
    Route(
        21,
        "PUT",
        "/checkpoint",
        "Finish a checkpoint's uploads or change its status.",
        body=UpdateCheckpointRequest,
        response=UpdateCheckpointResponse,
    ),
    Route(
        22,
        "GET",
        "/checkpoints",
        "List checkpoints.",
        query=ListCheckpointsQuery,
        response=ListCheckpointsResponse,
    ),
    Route(
        23,
        "POST",
        "/train",
        "Create a training job and start its uploads.",
        body=CreateTrainJobRequest,
        response=CreateTrainJobResponse,
    ),
    Route(
        24,
        "PUT",
        "/train",
        "Start a training job.",
        body=UpdateTrainJobRequest,
        response=UpdateTrainJobResponse,
    ),
    Route(25, "GET", "/trains", "List training jobs.", query=ListTrainJobsQuery, response=ListTrainJobsResponse),
    Route(
        26,
        "POST",
        "/dataset",
        "Create a dataset and presigned URLs for its files.",
        body=CreateDatasetRequest,
        response=CreateDatasetResponse,
    ),
    Route(
        27,
        "PUT",
        "/dataset",
        "Enable or disable a dataset.",
        body=UpdateDatasetRequest,
        response=UpdateDatasetResponse,
    ),
    Route(28, "GET", "/datasets", "List datasets.", query=ListDatasetsQuery, response=ListDatasetsResponse),
    Route(
        29,
        "GET",
        "/{dataset_name}/data",
        "List a dataset's items.",
        path_params=DatasetPath,
        response=DatasetDataResponse,
    ),
    Route(
        29,
        "GET",
        "/dataset/{dataset_name}/data",
        "List a dataset's items.",
        path_params=DatasetPath,
        response=DatasetDataResponse,
        alias=True,
    ),
)


def route(index: int) -> Route:
    """The documented (non-alias) row of a route, by the seed's index."""
    for candidate in ROUTES:
        if candidate.index == index and not candidate.alias:
            return candidate
    raise KeyError(index)
