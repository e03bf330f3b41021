"""One live deployment per endpoint name, decided atomically by the owner.

The edge refuses a name its read model shows in use, but two requests at once
both pass it (the read model lags), and SageMaker takes a second
``CreateEndpoint`` of a name as "already exists", which the retry-safe gateway
counts as done: both jobs would then claim one endpoint. So the first job to
act on a name takes the name's lease, a private row of this service's table
written with the table's version condition (exactly one writer of a version
wins). A lease whose holder has finished (failed or deleted) or never existed
is taken over the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from sdmw_contracts.envelope import EntityChanged
from service_kit.snapshots import SnapshotTable, StaleWrite

#: Tries before giving up to the queue's redelivery (each lost race means someone else just wrote).
ATTEMPTS = 3


class EndpointNameLease(EntityChanged):
    """Which deployment job holds an endpoint name (``id``); this service's own row, never published."""

    holder: str

    @classmethod
    def entity_type(cls) -> str:
        return "EndpointNameLease"


def acquire(table: SnapshotTable, endpoint_name: str, job_id: str, is_live: Callable[[str], bool]) -> str | None:
    """Take the name for ``job_id``; None when it holds it, else the live job that does."""
    for _ in range(ATTEMPTS):
        lease = table.get(EndpointNameLease, endpoint_name)
        if lease is not None and lease.holder == job_id:
            return None
        if lease is not None and is_live(lease.holder):
            return lease.holder
        version = 1 if lease is None else lease.version + 1
        try:
            table.save(EndpointNameLease(id=endpoint_name, version=version, holder=job_id))
            return None
        except StaleWrite:
            continue  # another job wrote the lease meanwhile: look again
    raise StaleWrite(f"the lease of endpoint name {endpoint_name} kept changing; the command is retried")
