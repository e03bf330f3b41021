"""A delivery attempt has one deadline for all of it, against receivers on 127.0.0.1 that trickle their answer.

The per-operation timeout alone does not bound an attempt: a receiver that sends its answer one byte at a
time never lets a single read wait long, and held each attempt (and its delivery slot) for as long as it
liked (issue 20, item 4: 95 s for a 200 sent a byte every 2.5 s).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.unit.webhooks.secrets import new_secret
from webhooks.delivery import ATTEMPT_DEADLINE_S, Deliverer, Delivery, Outcome, new_client
from webhooks.gate import MAX_IN_FLIGHT, TargetGate
from webhooks.resources import RESOURCES
from webhooks.transport import AttemptDeadline, CheckedNetworkBackend, CheckedTransport

#: The trickling receivers' pace, and the deadline the tests give an attempt.
BYTE_EVERY_S = 0.5
DEADLINE_S = 1.0
#: What an attempt may take beyond its deadline: the operation under way when it passes ends by then too.
SLACK_S = 0.6

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Receiver:
    """A raw HTTP/1.1 server on 127.0.0.1: reads a request, then answers ``head`` at once and ``trickled``
    one byte every ``BYTE_EVERY_S``; ``silent`` answers nothing at all."""

    def __init__(
        self,
        head: bytes = b"",
        trickled: bytes = b"",
        silent: bool = False,
        deaf: bool = False,
        tls: ssl.SSLContext | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.head, self.trickled, self.silent, self.deaf = head, trickled, silent, deaf
        #: ``tls``: the server's TLS context; ``raw``: trickled as soon as the client has sent anything,
        #: before any HTTP (the start of a TLS handshake that never completes).
        self.tls, self.raw = tls, raw
        self.requests = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        if self.raw is not None:
            with connection:
                self._trickle_raw(connection)
            return
        if self.tls is not None:
            try:
                connection = self.tls.wrap_socket(connection, server_side=True)
            except (OSError, ssl.SSLError):
                connection.close()
                return
        with connection:
            if self.deaf:  # reads nothing, so a large request fills the buffers and the sender blocks
                self._stop.wait(30)
                return
            try:
                while self._read_request(connection):
                    self.requests += 1
                    if self.silent:
                        self._stop.wait(30)
                        return
                    connection.sendall(self.head)
                    for byte in self.trickled:
                        if self._stop.wait(BYTE_EVERY_S):
                            return
                        connection.sendall(bytes([byte]))
            except OSError:
                return  # the client hung up, as it should at its deadline

    def _trickle_raw(self, connection: socket.socket) -> None:
        try:
            connection.recv(65536)
            for byte in self.raw or b"":
                if self._stop.wait(BYTE_EVERY_S):
                    return
                connection.sendall(bytes([byte]))
        except OSError:
            return

    @staticmethod
    def _read_request(connection: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        while len(body) < length:
            body += connection.recv(65536)
        return True

    def close(self) -> None:
        self._stop.set()
        self._server.close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def receiver(made: list[Receiver], **kwargs) -> Receiver:
    made.append(Receiver(**kwargs))
    return made[-1]


def deliverer(deadline_s: float = DEADLINE_S) -> Deliverer:
    return Deliverer(new_client(allow_loopback=True), allow_loopback=True, deadline_s=deadline_s)


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client context trusting it."""

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = f"{folder}/cert.pem", f"{folder}/key.pem"
        with open(cert_file, "wb") as out:
            out.write(pem)
        with open(key_file, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=pem.decode())
    yield server, client


def tls_deliverer(client_context: ssl.SSLContext) -> Deliverer:
    backend = CheckedNetworkBackend(allow_loopback=True)
    http = httpx.Client(transport=CheckedTransport(backend, verify=client_context), trust_env=False)
    return Deliverer(http, allow_loopback=True, deadline_s=DEADLINE_S)


def delivery(url: str) -> Delivery:
    return Delivery("evt-1", "sub-1", url, new_secret(), json.dumps({"id": "job-1"}))


def timed(sender: Deliverer, url: str):
    start = time.monotonic()
    attempt = sender.deliver(delivery(url))
    return attempt, time.monotonic() - start


def test_a_trickled_answer_is_cut_off_at_the_deadline_and_the_attempt_fails(receivers):
    # The whole 200 would take len(OK) x 0.5 s = 19 s; before the deadline the attempt waited for all of it.
    trickler = receiver(receivers, trickled=OK)
    attempt, took = timed(deliverer(), f"{trickler.origin}/hook")
    assert took < DEADLINE_S + SLACK_S
    assert attempt.outcome is Outcome.RETRY
    assert attempt.status_code is None  # no answer: the gate pauses the receiver, the schedule retries
    assert "deadline" in attempt.error


def test_a_receiver_that_never_answers_is_left_at_the_deadline_not_the_per_operation_timeout(receivers):
    silent = receiver(receivers, silent=True)
    attempt, took = timed(deliverer(), f"{silent.origin}/hook")
    assert took < DEADLINE_S + SLACK_S
    assert (attempt.outcome, attempt.status_code) == (Outcome.RETRY, None)


def test_an_error_answer_whose_body_trickles_keeps_its_status_and_ends_at_the_deadline(receivers):
    head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\n"
    slow_body = receiver(receivers, head=head, trickled=b"x" * 100)
    attempt, took = timed(deliverer(), f"{slow_body.origin}/hook")
    assert took < DEADLINE_S + SLACK_S
    assert (attempt.outcome, attempt.status_code) == (Outcome.RETRY, 503)


def test_the_deadline_holds_over_tls_too(receivers, tls):
    server, client = tls
    prompt = receiver(receivers, head=OK, tls=server)
    url = f"https://127.0.0.1:{prompt.origin.rsplit(':', 1)[1]}/hook"
    assert timed(tls_deliverer(client), url)[0].outcome is Outcome.DELIVERED  # the TLS set-up itself works
    trickler = receiver(receivers, trickled=OK, tls=server)
    url = f"https://127.0.0.1:{trickler.origin.rsplit(':', 1)[1]}/hook"
    attempt, took = timed(tls_deliverer(client), url)
    assert took < DEADLINE_S + SLACK_S
    assert (attempt.outcome, attempt.status_code) == (Outcome.RETRY, None)
    assert "deadline" in attempt.error


def test_a_tls_handshake_that_trickles_is_cut_off_at_the_deadline(receivers, tls):
    # A TLS record header announcing 16 KB, then its bytes one at a time: the handshake never completes.
    _, client = tls
    stalling = receiver(receivers, raw=b"\x16\x03\x03\x40\x00" + b"\x02" * 64)
    url = f"https://127.0.0.1:{stalling.origin.rsplit(':', 1)[1]}/hook"
    attempt, took = timed(tls_deliverer(client), url)
    assert took < DEADLINE_S + SLACK_S
    assert (attempt.outcome, attempt.status_code) == (Outcome.RETRY, None)
    assert "deadline" in attempt.error


def test_a_receiver_that_does_not_read_the_request_is_left_at_the_deadline(receivers):
    deaf = receiver(receivers, deaf=True)
    sender = deliverer()
    large = Delivery("evt-1", "sub-1", f"{deaf.origin}/hook", new_secret(), json.dumps({"x": "y" * 32_000_000}))
    start = time.monotonic()
    attempt = sender.deliver(large)
    assert time.monotonic() - start < DEADLINE_S + SLACK_S
    assert (attempt.outcome, attempt.status_code) == (Outcome.RETRY, None)
    assert "deadline" in attempt.error


def test_the_watchdog_ends_an_operation_blocked_past_the_deadline():
    # For what one operation could stretch beyond the time it was given (httpcore's write sends in a loop,
    # each send given the whole timeout again): the attempt's sockets are shut when the deadline passes.
    ours, theirs = socket.socketpair()
    with ours, theirs:
        start = time.monotonic()
        with AttemptDeadline(DEADLINE_S) as deadline:
            deadline.watch(ours)
            ours.settimeout(None)
            assert ours.recv(1) == b""  # blocked with no timeout of its own, until the watchdog shut it
        assert DEADLINE_S <= time.monotonic() - start < DEADLINE_S + SLACK_S
        assert deadline.passed and deadline.over


def test_a_deadline_that_ended_in_time_shuts_nothing():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        with AttemptDeadline(0.2) as deadline:
            deadline.watch(ours)
        time.sleep(0.4)
        theirs.sendall(b"x")
        assert ours.recv(1) == b"x"  # a connection kept alive for the next attempt still works
        assert not deadline.passed


def test_each_attempt_has_its_own_deadline_on_a_kept_connection(receivers):
    prompt = receiver(receivers, head=OK)
    sender = deliverer()
    assert timed(sender, f"{prompt.origin}/hook")[0].outcome is Outcome.DELIVERED
    time.sleep(DEADLINE_S + 0.2)  # longer than one deadline, less than the pool's keep-alive
    assert timed(sender, f"{prompt.origin}/hook")[0].outcome is Outcome.DELIVERED
    assert prompt.requests == 2


def test_the_deadline_is_well_inside_the_worker_s_run_and_the_queue_s_visibility():
    [worker] = RESOURCES.functions
    # Room beyond the attempt for the name's resolution and the queue and table calls around it.
    assert worker.timeout_s / 2 >= ATTEMPT_DEADLINE_S
    assert RESOURCES.queue.visibility_timeout_s >= 6 * worker.timeout_s


def test_one_trickling_origin_leaves_delivery_slots_to_others(receivers):
    """The attack: eight deliveries to four paths of one trickling receiver, then one to a healthy one,
    through the local worker's eight slots. Before, the gate counted each path apart and let all eight
    in, and the healthy delivery waited for the whole trickle."""
    trickler = receiver(receivers, trickled=OK)
    healthy = receiver(receivers, head=OK)
    gate = TargetGate()
    sender = deliverer(deadline_s=3.0)
    admitted: list[str] = []

    def slot(url: str) -> float | None:
        """One poller taking one message: a delivery the gate holds back goes back to the queue at once."""
        if gate.admit(url) is not None:
            return None
        admitted.append(url)
        start = time.monotonic()
        attempt = sender.deliver(delivery(url))
        gate.done(url, answered=attempt.status_code is not None)
        return time.monotonic() - start if attempt.outcome is Outcome.DELIVERED else None

    with ThreadPoolExecutor(max_workers=8) as slots:
        slow = [slots.submit(slot, f"{trickler.origin}/path-{i % 4}") for i in range(8)]
        time.sleep(0.2)
        start = time.monotonic()
        healthy_took = slots.submit(slot, f"{healthy.origin}/hook").result()
        healthy_late = time.monotonic() - start
        for future in slow:
            future.result()
    assert healthy_took is not None and healthy_late < 1.0
    assert sum(url.startswith(trickler.origin) for url in admitted) == MAX_IN_FLIGHT
