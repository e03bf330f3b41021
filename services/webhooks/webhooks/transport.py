"""An httpx transport that connects only to addresses it has checked itself.

Checking a URL and then letting the HTTP client resolve its host again leaves a gap: a name can answer
a public address to the check and an internal one to the client a moment later (DNS rebinding). Here
the connection is made by the same code that resolved and checked the addresses, to those addresses;
TLS is still verified against the host name.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from service_kit.webhook_targets import GetAddrInfo, HostNotResolved, RefusedTarget, check_host


class CheckedNetworkBackend(httpcore.SyncBackend):
    """httpcore's own backend, connecting to the checked addresses of a host instead of its name."""

    def __init__(self, *, allow_loopback: bool = False, getaddrinfo: GetAddrInfo = socket.getaddrinfo) -> None:
        self._allow_loopback = allow_loopback
        self._getaddrinfo = getaddrinfo

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = check_host(host, port, allow_loopback=self._allow_loopback, getaddrinfo=self._getaddrinfo)
        except (RefusedTarget, HostNotResolved) as error:
            raise httpcore.ConnectError(str(error)) from None
        failure: httpcore.ConnectError | None = None
        # Each address in turn, as socket.create_connection would do with the name.
        for address in addresses:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None  # check_host returns at least one address
        raise failure


class CheckedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through ``CheckedNetworkBackend``.

    httpx 0.28 takes no network backend, so the connection pool it builds is replaced by an equal one
    that has it; ``tests/unit/webhooks/test_transport.py`` sends real requests through it, so a change
    in httpx that breaks this shows there.
    """

    def __init__(self, backend: CheckedNetworkBackend, *, verify: bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )
