"""sd-runtime: the container SageMaker runs for the Stable Diffusion middleware.

It follows the SageMaker container contract: ``serve`` answers HTTP on
``SAGEMAKER_BIND_TO_PORT`` (default 8080).
"""
