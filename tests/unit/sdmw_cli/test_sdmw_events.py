"""``sdmw events tail`` and ``sdmw webhooks listen`` on moto's EventBridge, SQS and S3 (``mock_aws``).

moto delivers ``put_events`` to the rule's SQS target at once, so each test
puts its events from ``following.on_tap_ready`` (called once the queue and the rule
exist) and stops the command with ``--max-events`` (or Ctrl-C, SIGTERM, an
error), then checks that the queue and the rule are gone.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime

import boto3
import httpx
import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner

from sdmw_cli import cli, events, following, main
from sdmw_cli.commands import webhooks as webhook_commands
from tests.conftest import aws_credentials, fresh_aws_clients, mocked_aws  # noqa: F401 - the repo's moto fixtures

runner = CliRunner()
BUS = "sdmw-bus"


@pytest.fixture
def bus(mocked_aws):  # noqa: F811 - the imported fixture, requested by name
    boto3.client("events").create_event_bus(Name=BUS)
    boto3.client("s3").create_bucket(Bucket="sdmw-bucket")
    return BUS


def detail(entity_id: str, status: str, correlation_id: str | None = None, **data) -> dict:
    return {
        "metadata": {
            "event_id": f"ev-{entity_id}-{status}",
            "event_version": 1,
            "correlation_id": correlation_id or entity_id,
            "occurred_at": "2026-11-28T03:00:00+00:00",
            "producer": "test",
        },
        "data": {"id": entity_id, "status": status, **data},
    }


def entry(detail_type: str, body: dict, source: str = "sdmw.inference-dispatcher") -> dict:
    return {"Source": source, "DetailType": detail_type, "Detail": json.dumps(body), "EventBusName": BUS}


def put(*entries: dict) -> None:
    answer = boto3.client("events").put_events(Entries=list(entries))
    assert answer["FailedEntryCount"] == 0


def on_ready(monkeypatch, hook) -> list[events.EventTap]:
    taps: list[events.EventTap] = []

    def ready(tap):
        taps.append(tap)
        hook(tap)

    monkeypatch.setattr(following, "on_tap_ready", ready)
    return taps


def assert_removed(tap: events.EventTap) -> None:
    assert boto3.client("sqs").list_queues(QueueNamePrefix="sdmw-tail-").get("QueueUrls", []) == []
    rules = boto3.client("events").list_rules(EventBusName=BUS, NamePrefix="sdmw-tail-")["Rules"]
    assert rules == [], rules
    assert tap.name.startswith("sdmw-tail-")


def test_the_pattern_matches_project_events_and_the_filters():
    assert events.event_pattern() == {"source": [{"prefix": "sdmw."}]}
    assert events.event_pattern(["InferenceJobChanged"], ["j1"]) == {
        "source": [{"prefix": "sdmw."}],
        "detail-type": ["InferenceJobChanged"],
        "detail": {"metadata": {"correlation_id": ["j1"]}},
    }


def test_tail_prints_project_events_one_line_each_then_removes_its_queue_and_rule(bus, monkeypatch):
    taps = on_ready(
        monkeypatch,
        lambda tap: put(
            entry("InferenceJobChanged", detail("j1", "succeed")),
            entry("SomethingElse", {"x": 1}, source="aws.sagemaker"),  # not the project's: not printed
            entry("EndpointDeploymentChanged", detail("d1", "success", endpoint_name="e")),
        ),
    )
    result = runner.invoke(main.app, ["events", "tail", "--max-events", "2", "--wait-s", "0"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert sorted(lines) == [
        ["2026-11-28T03:00:00+00:00", "EndpointDeploymentChanged", "d1", "success"],
        ["2026-11-28T03:00:00+00:00", "InferenceJobChanged", "j1", "succeed"],
    ]
    [tap] = taps
    assert f"removed {tap.name}" in result.stderr
    assert_removed(tap)


def test_tail_json_prints_whole_events_and_filters_by_type_and_job(bus, monkeypatch):
    taps = on_ready(
        monkeypatch,
        lambda tap: put(
            entry("InferenceJobChanged", detail("j1", "inprogress")),
            entry("InferenceJobChanged", detail("j2", "succeed")),  # another job
            entry("TrainJobChanged", detail("j1", "Training")),  # another type
            entry("InferenceJobChanged", detail("j1", "succeed")),
        ),
    )
    args = ["events", "tail", "--type", "InferenceJobChanged", "--job", "j1", "--json", "--max-events", "2"]
    result = runner.invoke(main.app, [*args, "--bus", BUS, "--wait-s", "0"])
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["detail-type"], e["detail"]["data"]["status"]) for e in printed] == [
        ("InferenceJobChanged", "inprogress"),
        ("InferenceJobChanged", "succeed"),
    ]
    assert {e["source"] for e in printed} == {"sdmw.inference-dispatcher"}
    assert_removed(taps[0])


def test_tail_reads_claimed_data_back_from_s3(bus, monkeypatch):
    items = {"id": "big", "status": "Enabled", "items": ["x"] * 10}
    boto3.client("s3").put_object(
        Bucket="sdmw-bucket", Key="event-claims/DatasetChanged/e1.json", Body=json.dumps(items)
    )
    claimed = {
        **detail("big", "ignored"),
        "data": {},
        "data_s3_uri": "s3://sdmw-bucket/event-claims/DatasetChanged/e1.json",
    }
    on_ready(monkeypatch, lambda tap: put(entry("DatasetChanged", claimed, source="sdmw.asset-registry")))
    result = runner.invoke(main.app, ["events", "tail", "--json", "--max-events", "1", "--wait-s", "0"])
    assert result.exit_code == 0, result.output
    [event] = [json.loads(line) for line in result.stdout.splitlines()]
    assert event["detail"]["data"] == items and "data_s3_uri" not in event["detail"]


def test_tail_uses_the_bus_from_the_environment(bus, monkeypatch):
    monkeypatch.setenv("SDMW_EVENT_BUS", "other-bus")
    result = runner.invoke(main.app, ["events", "tail", "--max-events", "1", "--wait-s", "0"])
    assert result.exit_code == cli.EXIT_API
    assert "other-bus" in result.output and "Traceback" not in result.output
    assert boto3.client("sqs").list_queues(QueueNamePrefix="sdmw-tail-").get("QueueUrls", []) == []


def test_ctrl_c_stops_the_tail_and_removes_everything(bus, monkeypatch):
    def interrupt(tap):
        raise KeyboardInterrupt

    taps = on_ready(monkeypatch, interrupt)
    result = runner.invoke(main.app, ["events", "tail", "--wait-s", "0"])
    assert result.exit_code == 0, result.output
    assert_removed(taps[0])


def test_sigterm_stops_the_tail_and_removes_everything(bus, monkeypatch):
    def terminate(tap):
        if signal.getsignal(signal.SIGTERM) is not following._raise_stopped:
            pytest.skip("SIGTERM handler not installed (not the main thread)")
        os.kill(os.getpid(), signal.SIGTERM)

    taps = on_ready(monkeypatch, terminate)
    result = runner.invoke(main.app, ["events", "tail", "--wait-s", "0"])
    assert result.exit_code == 0, result.output
    assert_removed(taps[0])
    assert signal.getsignal(signal.SIGTERM) is not following._raise_stopped  # put back


def test_an_error_while_polling_still_removes_the_rule(bus, monkeypatch):
    def lose_the_queue(tap):
        boto3.client("sqs").delete_queue(QueueUrl=tap.queue_url)

    taps = on_ready(monkeypatch, lose_the_queue)
    result = runner.invoke(main.app, ["events", "tail", "--wait-s", "0"])
    assert result.exit_code == cli.EXIT_API, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert_removed(taps[0])


# ---------------------------------------------------------------- webhooks listen


def receiver(monkeypatch, handler) -> list[httpx.Request]:
    received: list[httpx.Request] = []

    def record(request):
        received.append(request)
        return handler(request)

    monkeypatch.setattr(
        webhook_commands, "forward_http_factory", lambda: httpx.Client(transport=httpx.MockTransport(record))
    )
    return received


def test_listen_forwards_signed_standard_webhooks_deliveries(bus, monkeypatch):
    received = receiver(monkeypatch, lambda request: httpx.Response(204))
    taps = on_ready(monkeypatch, lambda tap: put(entry("InferenceJobChanged", detail("j1", "succeed", task_type="x"))))
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    args = ["webhooks", "listen", "--forward-to", "http://localhost:9000/hook", "--secret", secret]
    result = runner.invoke(main.app, [*args, "--max-events", "1", "--wait-s", "0"])
    assert result.exit_code == 0, result.output
    [request] = received
    assert str(request.url) == "http://localhost:9000/hook"
    body = request.content.decode()
    assert json.loads(body) == {
        "type": "InferenceJobChanged",
        "timestamp": "2026-11-28T03:00:00+00:00",
        "data": {"id": "j1", "status": "succeed", "task_type": "x"},
    }
    assert " " not in body  # compact
    assert request.headers["webhook-id"] == "msg_ev-j1-succeed"
    Webhook(secret).verify(body, dict(request.headers))  # raises if the signature is wrong
    assert "-> 204" in result.stdout
    assert_removed(taps[0])


def test_listen_without_a_secret_makes_one_and_prints_it_first(bus, monkeypatch):
    received = receiver(monkeypatch, lambda request: httpx.Response(200))
    on_ready(monkeypatch, lambda tap: put(entry("TrainJobChanged", detail("t1", "Complete"))))
    args = ["webhooks", "listen", "--forward-to", "http://localhost:9000/hook", "--max-events", "1", "--wait-s", "0"]
    result = runner.invoke(main.app, args)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("signing secret: whsec_")
    secret = first.removeprefix("signing secret: ")
    [request] = received
    Webhook(secret).verify(request.content.decode(), dict(request.headers))


def test_a_receiver_that_is_down_is_reported_not_fatal(bus, monkeypatch):
    def down(request):
        raise httpx.ConnectError("connection refused", request=request)

    received = receiver(monkeypatch, down)
    taps = on_ready(
        monkeypatch,
        lambda tap: put(
            entry("InferenceJobChanged", detail("j1", "inprogress")),
            entry("InferenceJobChanged", detail("j1", "succeed")),
        ),
    )
    args = ["webhooks", "listen", "--forward-to", "http://localhost:9/hook", "--secret", "whsec_" + "A" * 32]
    result = runner.invoke(main.app, [*args, "--max-events", "2", "--wait-s", "0"])
    assert result.exit_code == 0, result.output
    assert len(received) == 2
    assert result.stdout.count("failed: ConnectError") == 2
    assert_removed(taps[0])


def test_listen_refuses_a_secret_that_is_not_whsec(bus):
    result = runner.invoke(main.app, ["webhooks", "listen", "--forward-to", "http://x", "--secret", "nope"])
    assert result.exit_code == cli.EXIT_USAGE and "whsec_" in result.output
    assert boto3.client("sqs").list_queues(QueueNamePrefix="sdmw-tail-").get("QueueUrls", []) == []


def test_signed_request_is_stable_per_event_and_verifiable():
    event = {"id": "eb-1", "detail-type": "X", "detail": detail("a", "b")}
    secret = events.new_secret()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    body, headers = events.signed_request(event, secret, now)
    again, headers_again = events.signed_request(event, secret, now)
    assert (body, headers) == (again, headers_again)
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert events.message_id({"id": "eb-2", "detail": {}}) == "msg_eb-2"
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 32
