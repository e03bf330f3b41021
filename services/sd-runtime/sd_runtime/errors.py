"""Errors that answer a request with a status and a message a person can act on.

SageMaker turns a non-2xx answer from ``/invocations`` into the async job's
failure reason, so the message is what the user finally reads.
"""

from __future__ import annotations

import pickle


class RequestError(Exception):
    """The request cannot be served as sent (400 unless a subclass says otherwise)."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelNotFound(RequestError):
    """A model named by the request is not where its S3 URI says."""

    status = 404


class UnsupportedFeature(RequestError):
    """The request asks for something this runtime does not do (e.g. an upscaler model it does not have)."""

    status = 400


def is_out_of_memory(error: BaseException) -> bool:
    """Out-of-memory is the machine's problem, not the request's: it must not be reported as bad input."""
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def load_errors() -> tuple[type[BaseException], ...]:
    """What reading a user's model file can raise when the file, not the code, is at fault."""
    errors: list[type[BaseException]] = [
        ValueError,
        KeyError,
        TypeError,
        RuntimeError,
        OSError,
        EOFError,
        pickle.UnpicklingError,
    ]
    try:
        from safetensors import SafetensorError

        errors.append(SafetensorError)
    except ImportError:
        pass
    return tuple(errors)


class JobCancelled(RequestError):
    """The job was cancelled (its cancel marker is in the bucket): it stopped before writing any file.

    409, so SageMaker reports it as the container's answer and the job's owner, which already shows the job
    cancelled, only removes what is left of it.
    """

    status = 409
