"""Entry point SageMaker calls: ``python -m sd_runtime serve`` (or ``train``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    if command == "serve":
        # Imported here so that a bad command answers without loading the server.
        from sd_runtime.serve import serve

        serve()
        return 0
    if command == "train":
        # SageMaker training job (/opt/ml contract); torch is imported only once the hyperparameters are good.
        from sd_runtime.training import run

        return run()
    print("usage: python -m sd_runtime serve | train", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
