"""The seed API's 29 routes, by the number ``../shared/seed/api.md`` gives each.

What the edge serves, and every route's body, query and answer models, come from the app itself
(``api_gateway.app.ROUTERS``, its ``served_routes()`` and its OpenAPI document); this table says only
what the seed alone says: which routes a seed client calls, and their numbers. Paths are without the
stage prefix (``/prod``). Route 20 is ``POST /checkpoint``, as the seed's code samples call it (its
route list says GET). Tests check this table against the seed document and against the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HttpMethod = Literal["GET", "POST", "PUT"]


@dataclass(frozen=True)
class SeedRoute:
    index: int
    method: HttpMethod
    path: str


SEED_ROUTES: tuple[SeedRoute, ...] = tuple(
    SeedRoute(index, method, path)
    for index, method, path in (
        (1, "GET", "/inference/test-connection"),
        (2, "GET", "/inference/list-inference-jobs"),
        (3, "GET", "/inference/get-inference-job"),
        (4, "GET", "/inference/get-inference-job-image-output"),
        (5, "GET", "/inference/get-inference-job-param-output"),
        (6, "POST", "/inference-api/inference"),
        (7, "POST", "/inference/deploy-sagemaker-endpoint"),
        (8, "POST", "/inference/delete-sagemaker-endpoint"),
        (9, "GET", "/inference/list-endpoint-deployment-jobs"),
        (10, "GET", "/inference/get-endpoint-deployment-job"),
        (11, "GET", "/inference/generate-s3-presigned-url-for-uploading"),
        (12, "GET", "/inference/get-texual-inversion-list"),
        (13, "GET", "/inference/get-lora-list"),
        (14, "GET", "/inference/get-hypernetwork-list"),
        (15, "GET", "/inference/get-controlnet-model-list"),
        (16, "POST", "/inference/run-model-merge"),
        (17, "POST", "/model"),
        (18, "PUT", "/model"),
        (19, "GET", "/models"),
        (20, "POST", "/checkpoint"),
        (21, "PUT", "/checkpoint"),
        (22, "GET", "/checkpoints"),
        (23, "POST", "/train"),
        (24, "PUT", "/train"),
        (25, "GET", "/trains"),
        (26, "POST", "/dataset"),
        (27, "PUT", "/dataset"),
        (28, "GET", "/datasets"),
        (29, "GET", "/{dataset_name}/data"),
    )
)

#: The second path of route 29, which the deployed middleware served beside the documented one.
DATASET_DATA_ALIAS = "/dataset/{dataset_name}/data"
