"""How the edge waits on the read model: quick first polls, a pause that grows to a cap, never past the deadline."""

from __future__ import annotations

import pytest

from api_gateway import read_model as module
from api_gateway.read_model import ReadModel


class FakeClock:
    """``time.monotonic`` and ``time.sleep`` that only move when slept; records every pause."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


class AnswersAfter:
    """A table whose entity reaches version 1 after a number of reads."""

    def __init__(self, reads: int) -> None:
        self.reads_left = reads
        self.reads = 0

    def get(self, model, entity_id):
        self.reads += 1
        self.reads_left -= 1
        return {"version": 1 if self.reads_left <= 0 else 0}


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(module.time, "sleep", fake.sleep)
    return fake


def wait(table, timeout_s: float = 30):
    return ReadModel(table).wait_for(dict, "e-1", lambda s: s["version"] >= 1, timeout_s)


def test_an_entity_already_there_is_answered_without_a_pause(clock):
    table = AnswersAfter(1)
    assert wait(table) == {"version": 1}
    assert clock.pauses == [] and table.reads == 1


def test_the_pause_starts_short_and_grows_by_half_up_to_a_tenth_of_a_second(clock):
    wait(AnswersAfter(10))
    assert clock.pauses == pytest.approx([0.01, 0.015, 0.0225, 0.03375, 0.050625, 0.0759375, 0.1, 0.1, 0.1])


def test_a_quick_answer_is_seen_within_a_few_hundredths_of_a_second(clock):
    wait(AnswersAfter(4))
    assert clock.now < 0.05


def test_time_running_out_answers_the_last_snapshot_without_sleeping_past_the_deadline(clock):
    table = AnswersAfter(10_000)
    assert wait(table, timeout_s=1.0) == {"version": 0}
    assert clock.now == pytest.approx(1.0)
    assert max(clock.pauses) <= 0.1
