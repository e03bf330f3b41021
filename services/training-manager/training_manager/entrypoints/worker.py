"""Local entrypoint: long-poll the service's queue (``python -m training_manager.entrypoints.worker``)."""

from service_kit.worker import run_service_worker
from training_manager.bootstrap import bootstrap
from training_manager.resources import RESOURCES


def main() -> None:
    app = bootstrap()
    run_service_worker(app.consumer, app.settings, app.deps.logger, RESOURCES)


if __name__ == "__main__":
    main()
