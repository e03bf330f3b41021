"""What the routes need, wired once by bootstrap and read from the app's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import Request

from api_gateway.claims import ClaimCheck
from api_gateway.commands import CommandSender
from api_gateway.presign import Presigner
from api_gateway.read_model import ReadModel
from api_gateway.runnable import Directory
from api_gateway.settings import EdgeSettings


@dataclass
class EdgeDependencies:
    settings: EdgeSettings
    read_model: ReadModel
    commands: CommandSender
    presigner: Presigner
    claims: ClaimCheck
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Endpoints and models by name for the jobs submitted, read through a short cache (api_gateway.runnable).
    directory: Directory = field(init=False)

    def __post_init__(self) -> None:
        self.directory = Directory(self.read_model)


def edge(request: Request) -> EdgeDependencies:
    return request.app.state.deps
