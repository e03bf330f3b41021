"""Issue 20, item 11: what the local SageMaker tells users of a failure shows no path of this machine,
and its kept state never stops it from starting."""

from __future__ import annotations

import logging
from pathlib import Path

from infra.local.sagemaker import persistence
from infra.local.sagemaker.common import without_local_paths
from infra.local.sagemaker.instances import exit_cause


def test_paths_of_this_machine_are_cut_to_their_last_name() -> None:
    traceback = (
        'Traceback (most recent call last):\n  File "/home/dev/sdmw/.venv/lib/python3.11/site-packages/torch/x.py", '
        "line 3\nOSError: [Errno 2] No such file or directory: '/home/dev/sdmw/.run/sagemaker/e-1/model.safetensors'"
    )
    assert without_local_paths(traceback) == (
        'Traceback (most recent call last):\n  File "x.py", line 3\n'
        "OSError: [Errno 2] No such file or directory: 'model.safetensors'"
    )


def test_what_is_no_path_of_this_machine_stays() -> None:
    text = "s3://bucket/in/a.json, http://127.0.0.1:8080/ping, /opt/ml/model/unet, CUDA out of memory, 3/4 done"
    assert without_local_paths(text) == text


def test_an_exit_by_a_signal_says_which() -> None:
    assert exit_cause(3) == "exited with code 3"
    assert exit_cause(-9) == "exited with code -9 (killed by SIGKILL)"


def test_a_kept_state_that_cannot_be_read_is_dropped_once(tmp_path: Path, caplog) -> None:
    (tmp_path / persistence.STATE_FILE).write_text("{not json")
    with caplog.at_level(logging.ERROR):
        persistence.restore(tmp_path, sagemaker=None, plane=None)  # type: ignore[arg-type]
    assert "could not restore" in caplog.text
    assert not (tmp_path / persistence.STATE_FILE).exists()  # the next start starts empty, not failing again
