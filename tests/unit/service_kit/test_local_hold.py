"""The local worker holds a message as long as Lambda would run it, not the queue's (six times longer) visibility."""

from infra.catalog import SERVICES
from service_kit.resources import VISIBILITY_PER_FUNCTION_TIMEOUT
from service_kit.worker import local_hold_s


def test_a_local_worker_holds_a_message_for_its_functions_timeout():
    for resources in (s for s in SERVICES if s.queue):
        [function] = [f for f in resources.functions if f.trigger == "queue"]
        assert local_hold_s(resources) == function.timeout_s, resources.service
        # A message a killed local worker held comes back after one run's time, not after the AWS visibility.
        assert local_hold_s(resources) * VISIBILITY_PER_FUNCTION_TIMEOUT <= resources.queue.visibility_timeout_s
