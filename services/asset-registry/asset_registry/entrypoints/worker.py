"""Local entrypoint: long-poll the service's queue (``python -m asset_registry.entrypoints.worker``)."""

from asset_registry.bootstrap import bootstrap
from asset_registry.resources import RESOURCES
from service_kit.worker import run_service_worker


def main() -> None:
    app = bootstrap()
    run_service_worker(app.consumer, app.settings, app.deps.logger, RESOURCES)


if __name__ == "__main__":
    main()
