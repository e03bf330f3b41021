"""Keeps a receiver that hangs or is down from taking every delivery slot.

Deliveries run in a fixed number of slots (the local worker's pollers; on AWS, concurrent Lambda
invocations). A receiver that never answers (or trickles its answer) holds a slot for the attempt's
whole deadline, so a few such receivers with many deliveries pending would take every slot and hold up
healthy ones. Two rules, per target: the receiving origin (scheme, host and port), whatever the path,
since one server behind several paths is one receiver (counted per path, four subscriptions on four
paths of one trickling server took all eight local slots: issue 20, item 4):

- at most ``MAX_IN_FLIGHT`` attempts to one target at once; a delivery beyond that waits its turn;
- after an attempt that got no answer (a timeout, a refused connection), the target is left alone for
  a while (10 s, doubling with each further such attempt, up to 5 min): its deliveries wait without
  being attempted, and one attempt at a time probes whether it is back.

A delivery that waits is sent back to the queue, delayed by the pause (spread by up to half again at
random, so that many waiting deliveries do not all come back at once); waiting is not an attempt, so
the retry schedule and the day's limit are unchanged. Each wait costs a few queue calls, which is why
the pause grows: a receiver that stays down costs little. The state is per process: on AWS each Lambda container
keeps its own, which is enough because there each invocation takes one message.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_IN_FLIGHT = 2
#: How soon a delivery that found its target busy looks again.
BUSY_WAIT_S = 2.0
FIRST_PAUSE_S = 10.0
MAX_PAUSE_S = 300.0
SPREAD = 0.5


DEFAULT_PORTS = {"http": 80, "https": 443}


def target_of(url: str) -> str:
    """What one receiver is, for this purpose: the URL's origin (scheme, host, port; the default port
    spelled out), not its path or query."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    with contextlib.suppress(ValueError):  # a name stays as it is
        host = ipaddress.ip_address(host).compressed  # one spelling per literal address
    try:
        port = parts.port
    except ValueError:
        port = None  # a malformed port: refused by the target check before any attempt anyway
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or DEFAULT_PORTS.get(scheme, 0)}"


@dataclass
class _TargetState:
    in_flight: int = 0
    unanswered: int = 0
    paused_until: float = 0.0


class TargetGate:
    def __init__(self, clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random) -> None:
        self._clock = clock
        self._rand = rand
        self._targets: dict[str, _TargetState] = {}
        self._lock = threading.Lock()

    def admit(self, url: str) -> float | None:
        """None: go ahead (and call ``done`` after); else the seconds to wait before trying again."""
        with self._lock:
            state = self._targets.setdefault(target_of(url), _TargetState())
            now = self._clock()
            if state.paused_until > now:
                return self._spread(state.paused_until - now)
            if state.unanswered and state.in_flight:
                # One probe at a time to a target that has not answered lately; the rest wait a pause.
                return self._spread(_pause(state.unanswered))
            if state.in_flight >= MAX_IN_FLIGHT:
                return BUSY_WAIT_S
            state.in_flight += 1
            return None

    def _spread(self, wait_s: float) -> float:
        return wait_s * (1 + SPREAD * self._rand())

    def done(self, url: str, answered: bool) -> None:
        """``answered``: the receiver sent an HTTP answer, whatever its status."""
        with self._lock:
            state = self._targets.setdefault(target_of(url), _TargetState())
            state.in_flight = max(0, state.in_flight - 1)
            if answered:
                state.unanswered, state.paused_until = 0, 0.0
                return
            state.unanswered += 1
            state.paused_until = max(state.paused_until, self._clock() + _pause(state.unanswered))


def _pause(unanswered: int) -> float:
    return min(MAX_PAUSE_S, FIRST_PAUSE_S * 2 ** min(unanswered - 1, 16))
