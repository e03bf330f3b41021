"""sd-runtime: the container SageMaker runs for the Stable Diffusion middleware.

It follows the SageMaker container contract: ``serve`` answers HTTP on
``SAGEMAKER_BIND_TO_PORT`` (default 8080) with ``GET /ping`` and
``POST /invocations``.
"""

import os

# Models come from S3 only: diffusers and transformers must never reach for the Hugging Face Hub,
# which a SageMaker instance may not even be able to reach. Set before either is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
