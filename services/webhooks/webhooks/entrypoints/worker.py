"""Local entrypoint: long-poll the service's queue (``python -m webhooks.entrypoints.worker``).

Several pollers take one message each, as Lambda runs one invocation per message: a delivery waiting
on a slow receiver holds up no other.
"""

from service_kit.worker import run_service_worker
from webhooks.bootstrap import bootstrap
from webhooks.gate import TargetGate
from webhooks.resources import RESOURCES


def main() -> None:
    gate = TargetGate()  # one limit per receiver for all the pollers
    app = bootstrap(gate=gate)
    more = [bootstrap(gate=gate).consumer for _ in range(app.settings.concurrent_deliveries - 1)]
    run_service_worker(app.consumer, app.settings, app.deps.logger, RESOURCES, *more)


if __name__ == "__main__":
    main()
