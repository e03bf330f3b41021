"""What sd-runtime is sent for a command: the edge's typed parameters and resolved models, plus where
the runtime writes the job's files."""

from __future__ import annotations

from inference_dispatcher import jobs
from sdmw_contracts.events import InferenceRequested, ModelMergeRequested
from sdmw_contracts.events.inference import result_prefix
from sdmw_contracts.runtime import InvocationRequest, ResultFiles


def result_files(bucket: str, job_id: str, image_count: int) -> ResultFiles:
    return ResultFiles(
        prefix=f"s3://{bucket}/{result_prefix(job_id)}",
        images=jobs.image_names(image_count),
        parameters=jobs.param_name(job_id),
    )


def invocation(command: InferenceRequested | ModelMergeRequested, bucket: str) -> InvocationRequest:
    results = result_files(bucket, command.job_id, command.image_count())
    if isinstance(command, ModelMergeRequested):
        return InvocationRequest(inference_id=command.job_id, task="merge", merge=command.merge, results=results)
    return InvocationRequest(
        inference_id=command.job_id,
        task=command.task_type,
        models=command.resolved,
        params=command.params,
        interrogation=command.interrogation,
        results=results,
    )
