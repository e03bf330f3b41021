"""Delivering one event to one subscriber, and what to do after each attempt.

One attempt is one signed POST. Its outcome is one of three: delivered (2xx), worth trying again
(the receiver is down, slow or asking us to slow down), or final (the receiver refuses this request
and will refuse it again). Retries back off exponentially for about a day, so a receiver that is down
for hours still gets every event once it is back; a receiver that is gone for good costs a bounded
number of attempts before the event goes to the dead-letter record with the last error.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import httpx

from service_kit.webhook_targets import GetAddrInfo, HostNotResolved, RefusedTarget, check_target
from webhooks.signing import signed_headers, webhook_id
from webhooks.transport import CheckedNetworkBackend, CheckedTransport, attempt_deadline

#: Per network operation (connect, each read, each write), so a receiver that stops answering is left soon.
TIMEOUT_S = 10.0
#: For the whole attempt, on the wall clock: resolving, connecting, sending and reading the answer. A
#: receiver that trickles its answer is cut off here, and the attempt fails and is retried as any other
#: failure. Well inside the worker function's 45 s (resources.py), which also has to resolve the name
#: once more (not bounded here: getaddrinfo cannot be interrupted) and make the queue and table calls
#: around the attempt; 15 s is also what receivers are commonly given (Svix), against GitHub's 10 s.
ATTEMPT_DEADLINE_S = 15.0
FIRST_DELAY_S = 30.0
MAX_DELAY_S = 3600.0
#: No attempt starts later than this after the first one.
GIVE_UP_AFTER_S = 24 * 3600.0
#: Each delay is shortened by up to this fraction at random, so that the many deliveries failing
#: together when one receiver goes down do not all come back at the same instant.
JITTER = 0.2
#: How much of a refusing receiver's answer is kept for the dead-letter record.
ERROR_BODY_CHARS = 500
USER_AGENT = "sdmw-webhooks/0.1"


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FINAL = "final"


@dataclass(frozen=True)
class Delivery:
    """One event for one subscription: what is sent, where, and the secret that signs it."""

    event_id: str
    subscription_id: str
    url: str
    secret: str
    #: The JSON body exactly as sent: the signature covers these characters, not a re-serialization.
    body: str


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to; ``error`` says why it failed, for the logs and the dead-letter record."""

    outcome: Outcome
    status_code: int | None = None
    error: str | None = None


def classify_status(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    # 429 asks us to come back later; 5xx is the receiver's own trouble, usually passing.
    if status_code == 429 or status_code >= 500:
        return Outcome.RETRY
    # Any other 4xx refuses the request itself (400, 401, 404, 410 ...): sending it again changes nothing.
    # 3xx too: redirects are not followed, since the new location was never checked as a target.
    return Outcome.FINAL


def should_retry(outcome: Outcome) -> bool:
    return outcome is Outcome.RETRY


def next_delay(attempt: int, rand: Callable[[], float] = random.random, first_delay_s: float = FIRST_DELAY_S) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first): 30 s, 1 min, 2 min, ... 1 h."""
    base = min(MAX_DELAY_S, first_delay_s * 2 ** min(attempt - 1, 32))
    return base * (1 - JITTER * rand())


def retry_delay(
    attempt: Attempt,
    attempts_made: int,
    first_attempt_at: datetime,
    now: datetime,
    rand: Callable[[], float] = random.random,
    first_delay_s: float = FIRST_DELAY_S,
) -> float | None:
    """Seconds until the next attempt, or None when there is none: delivered, final, or a day has passed."""
    if not should_retry(attempt.outcome):
        return None
    delay = next_delay(attempts_made, rand, first_delay_s)
    if (now - first_attempt_at).total_seconds() + delay > GIVE_UP_AFTER_S:
        return None
    return delay


def new_client(*, allow_loopback: bool = False) -> httpx.Client:
    """The client deliveries go through outside tests: it connects only to addresses it has checked.

    ``trust_env=False``: proxy variables and ``.netrc`` must not decide where, or with which credentials,
    a request to a client-chosen URL goes.
    """
    return httpx.Client(
        transport=CheckedTransport(CheckedNetworkBackend(allow_loopback=allow_loopback)),
        timeout=TIMEOUT_S,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


class Deliverer:
    """Sends deliveries through one ``httpx.Client``; the client and the resolver are injected for tests."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        allow_loopback: bool = False,
        getaddrinfo: GetAddrInfo = socket.getaddrinfo,
        deadline_s: float = ATTEMPT_DEADLINE_S,
    ) -> None:
        """``deadline_s`` holds only connections made by a ``CheckedNetworkBackend`` (``new_client``'s)."""
        self._client = client
        self._allow_loopback = allow_loopback
        self._getaddrinfo = getaddrinfo
        self._deadline_s = deadline_s

    def deliver(self, delivery: Delivery, now: datetime | None = None) -> Attempt:
        with attempt_deadline(self._deadline_s) as deadline:
            # Checked again on every attempt: what a name resolves to can change after the subscription was made.
            try:
                check_target(delivery.url, allow_loopback=self._allow_loopback, getaddrinfo=self._getaddrinfo)
            except RefusedTarget as refused:
                return Attempt(Outcome.FINAL, error=f"target refused: {refused}")
            except HostNotResolved as error:
                return Attempt(Outcome.RETRY, error=str(error))
            try:
                return self._post(delivery, now)
            except httpx.TransportError as error:
                if deadline.over:
                    return Attempt(Outcome.RETRY, error=f"no complete answer within {deadline.message}")
                if isinstance(error, httpx.TimeoutException):
                    return Attempt(Outcome.RETRY, error=f"timed out after {TIMEOUT_S:g} s: {type(error).__name__}")
                return Attempt(Outcome.RETRY, error=f"connection failed: {type(error).__name__}: {error}")

    def _post(self, delivery: Delivery, now: datetime | None) -> Attempt:
        message_id = webhook_id(delivery.event_id, delivery.subscription_id)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signed_headers(delivery.secret, message_id, delivery.body, now),
        }
        # Streamed, so that only the start of an answer is read, however much a receiver sends back.
        with self._client.stream(
            "POST",
            delivery.url,
            content=delivery.body.encode(),
            headers=headers,
            timeout=TIMEOUT_S,
            follow_redirects=False,
        ) as response:
            outcome = classify_status(response.status_code)
            if outcome is Outcome.DELIVERED:
                return Attempt(outcome, response.status_code)
            return Attempt(outcome, response.status_code, _error_text(response))


def _error_text(response: httpx.Response) -> str:
    start = b""
    try:
        for chunk in response.iter_bytes():
            start += chunk
            if len(start) >= ERROR_BODY_CHARS:
                break
    except httpx.HTTPError:
        # The status already decided the outcome; an answer that breaks off only loses its text.
        pass
    text = start[:ERROR_BODY_CHARS].decode("utf-8", errors="replace").strip()
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")
