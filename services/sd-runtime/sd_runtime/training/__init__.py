"""``python -m sd_runtime train``: SageMaker training jobs under the ``/opt/ml`` contract.

Tasks (hyperparameter ``task``, see ``sdmw_contracts.training``):

- ``create-model``: the base checkpoint in the ``model`` channel becomes a diffusers folder in ``model/``;
- ``dreambooth``: the whole UNet (and text encoder) fine-tuned, written as one A1111 single-file checkpoint
  ``model/<model_name>.safetensors`` (UNet, VAE and text encoder in the LDM key layout);
- ``lora``: LoRA adapters trained on the frozen model, written as ``model/<model_name>.safetensors``.

``run`` returns the process's exit status: 0 with the result in ``model/``,
1 with the reason in ``output/failure``. Torch and diffusers are imported
only once the hyperparameters are known to be good.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from pathlib import Path

from sd_runtime.training.contract import (
    Hyperparameters,
    MLPaths,
    TrainingError,
    log,
    read_hyperparameters,
)
from sd_runtime.training.options import TrainOptions, options_from_hyperparameters
from sd_runtime.training.reporting import TrainingProgress, training_progress_from_env
from sdmw_contracts.training import UPLOAD_CHANNEL

#: Hyperparameters each task uses; others sent with a non-default value are named in the log.
_CREATE_MODEL = {"task", "model_name", "extract_ema"}


def run() -> int:
    """Run the job; its progress is reported as it goes and its end (either way) is always reported."""
    reports = training_progress_from_env()
    try:
        code, outcome = _run(reports)
        reports.finished(outcome)
        return code
    finally:
        reports.close()


def _run(reports: TrainingProgress) -> tuple[int, str]:
    """The exit status and, in a few words, how the job ended."""
    paths = MLPaths.from_env()
    started = time.monotonic()
    before = set(paths.model.iterdir()) if paths.model.is_dir() else set()
    try:
        hyperparameters = read_hyperparameters(paths)
        values = hyperparameters.values
        _check_model_name(values.model_name)
        log(f"sd-runtime train: task {values.task}, model_name {values.model_name!r}, /opt/ml root {paths.root}")
        _log_unused(hyperparameters)
        with tempfile.TemporaryDirectory(prefix="sd-runtime-train-") as scratch_dir:
            scratch = Path(scratch_dir)
            options = _options(hyperparameters, paths, scratch)
            _dispatch(options, paths, scratch, reports)
        log(f"sd-runtime train: {values.task} finished in {time.monotonic() - started:.1f} s")
        return 0, "finished"
    except TrainingError as error:
        _remove_partial_output(paths.model, before)
        paths.write_failure(error.message)
        return 1, f"failed: {error.message}"
    except Exception as error:
        _remove_partial_output(paths.model, before)
        traceback.print_exc()
        from sd_runtime.errors import is_out_of_memory

        if is_out_of_memory(error):
            message = (
                f"out of memory: {error}. Lower train_batch_size or resolution, use mixed_precision fp16, "
                "or run on an instance type with more GPU memory"
            )
        else:
            message = f"internal error: {type(error).__name__}: {error} (the job's log has the traceback)"
        paths.write_failure(message)
        return 1, f"failed: {message}"


def _remove_partial_output(model: Path, before: set[Path]) -> None:
    """A failed job leaves no half-written model for SageMaker to upload."""
    if not model.is_dir():
        return
    for path in set(model.iterdir()) - before:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _check_model_name(name: str) -> None:
    if name in {".", ".."} or name.startswith(".") or any(c in name for c in "/\\\0") or not name.isprintable():
        raise TrainingError(
            f"invalid hyperparameter model_name: {name!r} must be a plain name (no '/', '\\', leading '.' or "
            "control characters): it names the output"
        )


def _log_unused(hyperparameters: Hyperparameters) -> None:
    task = hyperparameters.values.task
    if task == "create-model":
        unused = sorted(hyperparameters.explicit - _CREATE_MODEL)
    else:
        lora_only = {"lora_rank", "lora_alpha"}
        unused = sorted(hyperparameters.explicit & lora_only) if task == "dreambooth" else []
    if unused:
        log(f"hyperparameters not used by {task}: {', '.join(unused)}")


def _options(hyperparameters: Hyperparameters, paths: MLPaths, scratch: Path) -> TrainOptions:
    from sd_runtime.training.dbconfig import apply_db_config, read_db_config

    values = hyperparameters.values
    options = options_from_hyperparameters(values)
    upload = paths.channel(UPLOAD_CHANNEL)
    if values.task == "create-model":
        if upload is not None or values.config_params:
            log("create-model does not use the upload channel or config_params")
        return options
    uploaded = read_db_config(upload, scratch)
    config = dict(uploaded or {})
    config.update(values.config_params)
    if not config:
        return options
    what = " and ".join(
        part
        for part, present in (("the uploaded db_config", uploaded is not None), ("config_params", values.config_params))
        if present
    )
    files = {p.name for p in upload.iterdir()} if upload is not None else set()
    result = apply_db_config(options, config, hyperparameters.explicit, files)
    log(f"db_config: reading {len(config)} settings from {what}")
    for note in result.notes:
        log(f"db_config: {note}")
    if result.applied:
        log(f"db_config settings applied: {', '.join(result.applied)}")
    log(f"db_config settings not applied: {', '.join(result.not_applied) if result.not_applied else 'none'}")
    if result.bookkeeping:
        log(
            f"db_config keys about the extension's own copy of the model, not training: {', '.join(result.bookkeeping)}"
        )
    return options


def _dispatch(options: TrainOptions, paths: MLPaths, scratch: Path, reports: TrainingProgress) -> None:
    from sd_runtime.training.checkpoint import quiet_libraries

    quiet_libraries()
    if options.task == "create-model":
        from sd_runtime.training.create_model import create_model

        create_model(options, paths, scratch)
        return
    from sd_runtime.training.fine_tune import fine_tune

    if options.task == "lora":
        from sd_runtime.training.lora import Lora

        fine_tune(Lora(), options, paths, scratch, reports)
    else:
        from sd_runtime.training.dreambooth import DreamBooth

        fine_tune(DreamBooth(), options, paths, scratch, reports)
