"""Powertools around the Lambda handlers: the consumer's answer unchanged, Lambda's context on every log line."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from mangum import Mangum
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from sdmw_contracts.envelope import EventEnvelope
from sdmw_contracts.events import EndpointDeletionRequested
from service_kit.consumer import Consumer, Router
from service_kit.lambda_entry import lambda_entry
from service_kit.logging import get_logger


@dataclass
class FakeLambdaContext:
    """Test double of the context object Lambda passes a handler: the attributes Powertools reads."""

    function_name: str = "sdmw-test-worker"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:sdmw-test-worker"
    aws_request_id: str = "6f1d6a3e-request"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture(autouse=True)
def outside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in every test run: no Lambda environment, so Powertools' Tracer disables itself."""
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)


@pytest.fixture
def service() -> str:
    """A service name of this test's own, so its logger writes to this test's captured stdout."""
    return f"test-entry-{uuid.uuid4().hex[:8]}"


def bus_body(job_id: str) -> str:
    envelope = EventEnvelope.wrap(
        EndpointDeletionRequested(job_id=job_id, endpoint_name="e"), producer="api-gateway", correlation_id=job_id
    )
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "source": "sdmw.api-gateway",
            "detail-type": "EndpointDeletionRequested",
            "detail": json.loads(envelope.model_dump_json()),
        }
    )


def sqs_batch(*bodies: str) -> dict:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sdmw-test",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def log_lines(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def test_a_wrapped_consumer_answers_as_the_consumer_does_and_logs_lambdas_context(service, capsys):
    seen = []

    def handle(event):
        job_id = event.envelope().data["job_id"]
        if job_id.startswith("bad"):
            raise RuntimeError("cannot handle this one")
        seen.append(job_id)

    consumer = Consumer(Router().on_event("EndpointDeletionRequested", handle), get_logger(service), None)
    handler = lambda_entry(service, consumer.handle_batch)

    result = handler(sqs_batch(bus_body("a"), bus_body("bad-1"), bus_body("b")), FakeLambdaContext())

    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert seen == ["a", "b"]
    handled = [line for line in log_lines(capsys.readouterr().out) if line["message"] == "message handled"]
    assert [line["correlation_id"] for line in handled] == ["a", "b"]  # the consumer's own, per message
    for line in handled:
        assert line["service"] == service
        assert line["function_name"] == "sdmw-test-worker"
        assert line["function_request_id"] == "6f1d6a3e-request"
        assert isinstance(line["cold_start"], bool)


def test_a_wrapped_asgi_app_takes_the_correlation_id_from_api_gateway(service, capsys):
    """The edge's shape: a Mangum instance (no __name__) and API Gateway's request id as correlation id."""
    logger = get_logger(service)

    async def ping(request):
        logger.info("pinged")
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/prod/ping", ping)])
    handler = lambda_entry(
        service, Mangum(app, lifespan="off"), correlation_id_path="requestContext.requestId", capture_response=False
    )

    response = handler(rest_api_event("GET", "/prod/ping", request_id="api-request-7"), FakeLambdaContext())

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"ok": True}
    (pinged,) = [line for line in log_lines(capsys.readouterr().out) if line["message"] == "pinged"]
    assert pinged["correlation_id"] == "api-request-7"
    assert pinged["function_name"] == "sdmw-test-worker"
    assert "cold_start" in pinged


def rest_api_event(method: str, path: str, *, request_id: str) -> dict:
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"host": "example.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"host": ["example.execute-api.us-east-1.amazonaws.com"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "requestId": request_id,
            "stage": "prod",
            "path": path,
            "httpMethod": method,
            "identity": {"sourceIp": "192.0.2.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }
