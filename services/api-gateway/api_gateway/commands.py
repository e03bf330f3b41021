"""Sending commands to the owning services."""

from __future__ import annotations

from api_gateway import SERVICE
from sdmw_contracts.envelope import Command
from service_kit.events import EventPublisher, outgoing


class CommandSender:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def send(self, command: Command, *, correlation_id: str) -> None:
        self._publisher.publish([outgoing(command, producer=SERVICE, correlation_id=correlation_id)])
