"""StubTrainer: a test double of ``sd_runtime train`` for the local SageMaker's training jobs.

It follows the ``/opt/ml`` contract under ``SD_RUNTIME_ML_ROOT`` and does what
the ``mode`` hyperparameter says:

- ``complete`` (the default): writes to ``model/`` what it was given (the
  hyperparameters, every channel file with its text, a few environment
  variables, its working directory) and a nested file, to ``output/data/`` a
  metrics file, then exits 0;
- ``fail``: writes the ``message`` hyperparameter to ``output/failure``, exits 1;
- ``crash``: prints a few lines and exits 3 without a failure file;
- ``sleep``: writes ``model/partial.txt`` and sleeps; on SIGTERM it saves
  ``model/saved-on-sigterm.txt`` and exits, as a well-behaved algorithm does;
- ``stubborn``: sleeps and ignores SIGTERM, so only SIGKILL ends it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

ENVIRONMENT_SHOWN = ("SD_RUNTIME_ML_ROOT", "TRAINING_JOB_NAME", "TRAINING_JOB_ARN", "STUB_GREETING")


def complete(root: Path, hyperparameters: dict[str, str]) -> int:
    model = root / "model"
    channels = {}
    for channel in sorted((root / "input" / "data").iterdir()):
        files = sorted(p for p in channel.rglob("*") if p.is_file())
        channels[channel.name] = {p.relative_to(channel).as_posix(): p.read_text() for p in files}
    received = {
        "hyperparameters": hyperparameters,
        "channels": channels,
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT_SHOWN},
        "cwd": os.getcwd(),
        "inputdataconfig": json.loads((root / "input" / "config" / "inputdataconfig.json").read_text()),
        "resourceconfig": json.loads((root / "input" / "config" / "resourceconfig.json").read_text()),
    }
    (model / "received.json").write_text(json.dumps(received))
    (model / "unet").mkdir()
    (model / "unet" / "weights.bin").write_bytes(b"\x00\x01weights")
    (root / "output" / "data" / "metrics.json").write_text(json.dumps({"loss": 0.25}))
    print("training done", flush=True)
    return 0


def sleep(root: Path, stubborn: bool) -> int:
    def save_and_exit(signum: int, frame: object) -> None:
        (root / "model" / "saved-on-sigterm.txt").write_text("saved")
        sys.exit(0)

    signal.signal(signal.SIGTERM, signal.SIG_IGN if stubborn else save_and_exit)
    (root / "model" / "partial.txt").write_text("partial")
    print("sleeping", flush=True)
    time.sleep(120)
    return 0


def main() -> int:
    root = Path(os.environ["SD_RUNTIME_ML_ROOT"])
    hyperparameters = json.loads((root / "input" / "config" / "hyperparameters.json").read_text())
    mode = hyperparameters.get("mode", "complete")
    if mode == "fail":
        (root / "output" / "failure").write_text(hyperparameters["message"] + "\n")
        return 1
    if mode == "crash":
        for line in range(30):
            print(f"crash log line {line}", flush=True)
        return 3
    if mode in ("sleep", "stubborn"):
        return sleep(root, stubborn=mode == "stubborn")
    return complete(root, hyperparameters)


if __name__ == "__main__":
    sys.exit(main())
