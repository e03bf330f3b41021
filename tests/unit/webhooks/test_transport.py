"""CheckedTransport: real requests to a receiver on 127.0.0.1, reached only through checked addresses."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.unit.webhooks.secrets import new_secret
from webhooks.delivery import Deliverer, Delivery, Outcome
from webhooks.transport import CheckedNetworkBackend, CheckedTransport


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.bodies.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def resolving(*answers: list[str]):
    """A getaddrinfo that gives ``answers`` in turn, one per call (the last one again after that)."""
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        addresses = answers[min(len(calls), len(answers) - 1)]
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    return getaddrinfo


def client(getaddrinfo, allow_loopback: bool) -> httpx.Client:
    backend = CheckedNetworkBackend(allow_loopback=allow_loopback, getaddrinfo=getaddrinfo)
    return httpx.Client(transport=CheckedTransport(backend), trust_env=False)


def url(server) -> str:
    return f"http://receiver.test:{server.server_address[1]}/hook"


def test_a_name_is_reached_at_the_address_that_was_checked(receiver):
    with client(resolving(["127.0.0.1"]), allow_loopback=True) as http:
        assert http.post(url(receiver), content=b"{}").status_code == 204
    assert receiver.bodies == [b"{}"]


def test_each_checked_address_is_tried_in_turn(receiver):
    # The receiver listens on 127.0.0.1 only, so 127.0.0.2 refuses the connection.
    with client(resolving(["127.0.0.2", "127.0.0.1"]), allow_loopback=True) as http:
        assert http.post(url(receiver), content=b"{}").status_code == 204


def test_an_internal_address_is_never_connected_to(receiver):
    with client(resolving(["127.0.0.1"]), allow_loopback=False) as http, pytest.raises(httpx.ConnectError) as error:
        http.post(url(receiver), content=b"{}")
    assert "loopback" in str(error.value)
    assert receiver.bodies == []


def test_a_name_rebinding_after_the_check_reaches_nothing(receiver):
    # The delivery's own check sees a public address; the connection's resolution then sees loopback.
    rebinding = resolving(["93.184.215.14"], ["127.0.0.1"])
    deliverer = Deliverer(client(rebinding, allow_loopback=False), getaddrinfo=rebinding)
    delivery = Delivery("evt-1", "sub-1", url(receiver), new_secret(), json.dumps({"id": "job-1"}))
    attempt = deliverer.deliver(delivery)
    assert attempt.outcome is Outcome.RETRY
    assert "loopback" in attempt.error
    assert receiver.bodies == []
