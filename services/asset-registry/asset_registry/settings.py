"""asset-registry's settings: everything it reads from its environment (see service_kit.config)."""

from __future__ import annotations

from typing import ClassVar

from asset_registry import SERVICE
from service_kit.config import ServiceSettings, imports_allow_loopback_field


class AssetRegistrySettings(ServiceSettings):
    """The core's names, the service's table and queue, and its limits on imports and unfinished uploads."""

    service: ClassVar[str] = SERVICE

    #: A checkpoint import bringing more than this is Failed and its upload aborted.
    import_max_bytes: int = 20 * 2**30
    #: The parts an import is written to S3 in (S3 takes 5 MiB to 5 GiB); one part is in memory at a time.
    import_part_bytes: int = 16 * 2**20
    #: An import still downloading after this long is Failed: under the Lambda function's 300 s timeout.
    import_time_limit_s: float = 270
    #: Loopback hosts accepted for imports (the local stack, so a test can serve a file; never on AWS).
    imports_allow_loopback: bool = imports_allow_loopback_field()
    #: A checkpoint still Initialed this long after its creation is deleted (its uploads aborted).
    unfinished_checkpoint_age_s: float = 24 * 3600
