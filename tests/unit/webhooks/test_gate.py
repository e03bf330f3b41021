"""The per-receiver gate: a receiver that hangs or is down cannot take every delivery slot."""

from __future__ import annotations

from webhooks.gate import BUSY_WAIT_S, FIRST_PAUSE_S, MAX_IN_FLIGHT, MAX_PAUSE_S, TargetGate, target_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_target_is_its_origin_scheme_host_and_port():
    assert target_of("https://Hooks.Example.com/a?x=1") == target_of("https://hooks.example.com/a")
    # One receiver whatever the path: four subscriptions on four paths of it share its slots.
    assert target_of("https://hooks.example.com/a") == target_of("https://hooks.example.com/b")
    assert target_of("https://hooks.example.com/a") == target_of("https://hooks.example.com:443/b")
    assert target_of("http://hooks.example.com/a") == target_of("http://hooks.example.com:80/")
    assert target_of("http://[::1]:8000/a") == target_of("http://[0:0::1]:8000/b")
    assert target_of("https://hooks.example.com/a") != target_of("https://hooks.example.com:8443/a")
    assert target_of("http://hooks.example.com/a") != target_of("https://hooks.example.com/a")
    assert target_of("https://hooks.example.com/a") != target_of("https://other.example.com/a")


def test_paths_of_one_receiver_share_its_slots_and_other_receivers_are_still_served():
    gate = TargetGate(Clock(), rand=lambda: 0.0)
    paths = [f"https://slow.example.com/sub-{i}" for i in range(4)]
    admitted = [gate.admit(url) is None for url in paths * 2]  # eight deliveries, as many as the local slots
    assert sum(admitted) == MAX_IN_FLIGHT
    assert gate.admit("https://slow.example.com:443/sub-9") == BUSY_WAIT_S
    for healthy in ["https://fine.example.com/in", "https://fine.example.com/other", "https://slow.example.com:8443/"]:
        assert gate.admit(healthy) is None
    gate.done(paths[0], answered=True)
    assert gate.admit(paths[3]) is None


def test_at_most_a_few_attempts_to_one_target_at_once_and_others_are_not_affected():
    gate = TargetGate(Clock(), rand=lambda: 0.0)
    for _ in range(MAX_IN_FLIGHT):
        assert gate.admit("https://slow.example.com/in") is None
    assert gate.admit("https://slow.example.com/in") == BUSY_WAIT_S
    assert gate.admit("https://fine.example.com/in") is None
    gate.done("https://slow.example.com/in", answered=True)
    assert gate.admit("https://slow.example.com/in") is None


def test_a_target_that_did_not_answer_is_paused_longer_each_time_then_probed_once():
    clock = Clock()
    gate = TargetGate(clock, rand=lambda: 0.0)
    url = "https://dead.example.com/in"
    assert gate.admit(url) is None
    gate.done(url, answered=False)
    assert gate.admit(url) == FIRST_PAUSE_S
    clock.now += FIRST_PAUSE_S
    assert gate.admit(url) is None  # the probe
    assert gate.admit(url) == FIRST_PAUSE_S  # one probe at a time; the others wait a pause
    gate.done(url, answered=False)
    assert gate.admit(url) == 2 * FIRST_PAUSE_S
    for _ in range(10):
        clock.now += MAX_PAUSE_S
        assert gate.admit(url) is None
        gate.done(url, answered=False)
    assert gate.admit(url) == MAX_PAUSE_S


def test_waits_are_spread_so_waiting_deliveries_do_not_return_together():
    gate = TargetGate(Clock(), rand=lambda: 1.0)
    url = "https://dead.example.com/in"
    gate.admit(url)
    gate.done(url, answered=False)
    assert gate.admit(url) == FIRST_PAUSE_S * 1.5


def test_an_answer_of_any_status_ends_the_pause():
    clock = Clock()
    gate = TargetGate(clock, rand=lambda: 0.0)
    url = "https://back.example.com/in"
    gate.admit(url)
    gate.done(url, answered=False)
    clock.now += FIRST_PAUSE_S
    gate.admit(url)
    gate.done(url, answered=True)  # a 500 is an answer: the receiver is there
    assert [gate.admit(url) for _ in range(MAX_IN_FLIGHT)] == [None] * MAX_IN_FLIGHT
