"""Local entrypoint of the read-model projector (``python -m api_gateway.entrypoints.projector_worker``)."""

from api_gateway import SERVICE
from api_gateway.bootstrap import projector
from api_gateway.resources import RESOURCES
from service_kit.logging import get_logger
from service_kit.worker import run_service_worker


def main() -> None:
    settings, consumer = projector()
    run_service_worker(consumer, settings, get_logger(SERVICE), RESOURCES)


if __name__ == "__main__":
    main()
