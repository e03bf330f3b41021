"""asset-registry's settings: everything it reads from its environment (see service_kit.config)."""

from __future__ import annotations

from typing import ClassVar

from asset_registry import SERVICE
from service_kit.config import ServiceSettings


class AssetRegistrySettings(ServiceSettings):
    """The core's names and the service's table and queue; asset-registry has no settings of its own."""

    service: ClassVar[str] = SERVICE
