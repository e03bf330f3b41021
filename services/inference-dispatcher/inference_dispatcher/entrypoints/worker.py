"""Local entrypoint: long-poll the service's queue (``python -m inference_dispatcher.entrypoints.worker``)."""

from inference_dispatcher.bootstrap import bootstrap
from inference_dispatcher.resources import RESOURCES
from service_kit.worker import run_service_worker


def main() -> None:
    app = bootstrap()
    run_service_worker(app.consumer, app.settings, app.deps.logger, RESOURCES)


if __name__ == "__main__":
    main()
