"""What the routes need, wired once by bootstrap and read from the app's state."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import Request

from api_gateway.claims import ClaimCheck
from api_gateway.commands import CommandSender
from api_gateway.job_logs import CloudWatchLogReader, LogReader
from api_gateway.presign import Presigner
from api_gateway.read_model import ReadModel
from api_gateway.runnable import Directory
from api_gateway.settings import EdgeSettings
from service_kit.webhook_secrets import SigningKey
from service_kit.webhook_targets import GetAddrInfo


@dataclass
class EdgeDependencies:
    settings: EdgeSettings
    read_model: ReadModel
    commands: CommandSender
    presigner: Presigner
    claims: ClaimCheck
    #: Webhook signing secrets: a subscription's, shown when it is created, and the default one jobs' own
    #: webhooks are signed with (service_kit.webhook_secrets).
    webhook_keys: SigningKey
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: How a webhook target's host name is resolved to be checked (service_kit.webhook_targets); tests
    #: pass their own, so that none depends on real DNS.
    resolve: GetAddrInfo = socket.getaddrinfo
    #: Jobs' log lines, from CloudWatch Logs (api_gateway.job_logs).
    logs: LogReader = field(default_factory=CloudWatchLogReader)
    #: Endpoints and models by name for the jobs submitted, read through a short cache (api_gateway.runnable).
    directory: Directory = field(init=False)

    def __post_init__(self) -> None:
        self.directory = Directory(self.read_model)


def edge(request: Request) -> EdgeDependencies:
    return request.app.state.deps
