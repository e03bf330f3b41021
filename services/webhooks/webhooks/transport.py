"""An httpx transport that connects only to addresses it has checked itself.

Checking a URL and then letting the HTTP client resolve its host again leaves a gap: a name can answer
a public address to the check and an internal one to the client a moment later (DNS rebinding). Here
the connection is made by the same code that resolved and checked the addresses, to those addresses;
TLS is still verified against the host name.

It also holds each delivery attempt to one deadline (``attempt_deadline``), on the wall clock across the
whole attempt: connecting, TLS, sending and reading the answer. httpx's timeouts are per network
operation, so a receiver that sends its answer a byte at a time never trips them and could hold an
attempt, and its delivery slot, as long as it liked (issue 20, item 4: 95 s). Two things enforce it:
every operation gets at most the time left (and none starts once it is gone), and a watchdog shuts the
attempt's sockets down when it passes, for whatever a single operation could still stretch (a send to a
receiver that reads its request a byte at a time is many ``send`` calls inside one ``write``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import httpcore
import httpx

from service_kit.webhook_targets import GetAddrInfo, HostNotResolved, RefusedTarget, check_host


class AttemptDeadline:
    """The moment one attempt must be over by, and the sockets it has used so far."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at = clock() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._over = False  # passed (the sockets are shut) or the attempt ended (nothing left to shut)
        self.passed = False
        self._watchdog = threading.Timer(seconds, self._pass)
        self._watchdog.daemon = True

    def left(self, timeout: float | None, error: type[httpcore.TimeoutException]) -> float:
        """The time an operation may take: ``timeout`` or what is left, the less; ``error`` once none is."""
        left = self._at - self._clock()
        if left <= 0 or self.passed:
            raise error(self.message)
        return left if timeout is None else min(timeout, left)

    @property
    def over(self) -> bool:
        """The deadline has passed: whatever failed just now failed for that."""
        return self.passed or self._clock() >= self._at

    @property
    def message(self) -> str:
        return f"the attempt's {self.seconds:g} s deadline passed"

    def watch(self, sock: Any) -> None:
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if self._over:
                if self.passed:
                    _shut(sock)
                return
            if sock not in self._sockets:
                self._sockets.append(sock)

    def _pass(self) -> None:
        with self._lock:
            if self._over:
                return
            self._over = self.passed = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> AttemptDeadline:
        self._watchdog.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._watchdog.cancel()
        with self._lock:
            self._over = True
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    """Ends whatever another thread is blocked on in ``sock`` (the owner closes it when that fails)."""
    # socket.socket's own method, also for an ssl.SSLSocket: that one's would drop its TLS state under
    # the thread still reading through it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


T = TypeVar("T")

_current: ContextVar[AttemptDeadline | None] = ContextVar("webhook_attempt_deadline", default=None)


@contextlib.contextmanager
def attempt_deadline(seconds: float) -> Iterator[AttemptDeadline]:
    """Every connection made or used through a ``CheckedNetworkBackend`` inside this block is held to
    ``seconds`` in all, from now (the block runs in one thread, as httpx's synchronous client does)."""
    with AttemptDeadline(seconds) as deadline:
        token = _current.set(deadline)
        try:
            yield deadline
        finally:
            _current.reset(token)


class DeadlineStream(httpcore.NetworkStream):
    """A connection's stream whose operations keep to the deadline of the attempt using it, if any (a
    connection kept alive serves several attempts, each with its own)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def _left(self, timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
        deadline = _current.get()
        if deadline is None:
            return timeout
        deadline.watch(self._stream.get_extra_info("socket"))
        return deadline.left(timeout, error)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout = self._left(timeout, httpcore.ReadTimeout)
        data = _passed_is_timeout(lambda: self._stream.read(max_bytes, timeout), httpcore.ReadTimeout)
        deadline = _current.get()
        if not data and deadline is not None and deadline.passed:
            raise httpcore.ReadTimeout(deadline.message)  # the watchdog's shutdown, not the receiver's
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        timeout = self._left(timeout, httpcore.WriteTimeout)
        _passed_is_timeout(lambda: self._stream.write(buffer, timeout), httpcore.WriteTimeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = self._left(timeout, httpcore.ConnectTimeout)
        tls = _passed_is_timeout(
            lambda: self._stream.start_tls(ssl_context, server_hostname, timeout), httpcore.ConnectTimeout
        )
        return DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _passed_is_timeout(operation: Callable[[], T], error: type[httpcore.TimeoutException]) -> T:
    """``operation()``; if the watchdog cut it off, the timeout it was, not the broken connection it leaves."""
    try:
        return operation()
    except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.RemoteProtocolError):
        deadline = _current.get()
        if deadline is not None and deadline.passed:
            raise error(deadline.message) from None
        raise


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
        deadline = _current.get()
        # Each address in turn, as socket.create_connection would do with the name.
        for address in addresses:
            left = timeout if deadline is None else deadline.left(timeout, httpcore.ConnectTimeout)
            try:
                return DeadlineStream(super().connect_tcp(str(address), port, left, local_address, socket_options))
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
