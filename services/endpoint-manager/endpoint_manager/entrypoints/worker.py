"""Local entrypoint: long-poll the service's queue (``python -m endpoint_manager.entrypoints.worker``)."""

from endpoint_manager.bootstrap import bootstrap
from endpoint_manager.resources import RESOURCES
from service_kit.worker import run_service_worker


def main() -> None:
    app = bootstrap()
    run_service_worker(app.consumer, app.settings, app.deps.logger, RESOURCES)


if __name__ == "__main__":
    main()
