"""Following the project's event bus from a developer's machine, as the Stripe CLI's ``listen`` does.

``EventTap`` makes a temporary SQS queue (``sdmw-tail-<random>``) that EventBridge may send to, and a
rule of the same name on the bus that sends the project's events (``source`` prefixed ``sdmw.``) to
it; leaving the ``with`` block, however it is left, removes the rule's targets, the rule and the
queue. ``poll`` long-polls the queue and answers the events, each deleted once received, with
claimed data (``detail.data_s3_uri``) read back from S3.

It uses boto3 with the user's standard AWS configuration: credentials, region and, for the local
stack, ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
from standardwebhooks import Webhook

SOURCE_PREFIX = "sdmw."
QUEUE_PREFIX = "sdmw-tail-"
SECRET_PREFIX = "whsec_"
#: The Standard Webhooks specification asks for 24 to 64 random bytes.
SECRET_BYTES = 24
#: SQS long polling waits at most 20 s.
MAX_WAIT_S = 20


def event_pattern(detail_types: Iterable[str] = (), job_ids: Iterable[str] = ()) -> dict[str, Any]:
    """The rule's pattern: the project's events, of ``detail_types`` and about ``job_ids`` when given."""
    pattern: dict[str, Any] = {"source": [{"prefix": SOURCE_PREFIX}]}
    if detail_types := list(detail_types):
        pattern["detail-type"] = detail_types
    if job_ids := list(job_ids):
        pattern["detail"] = {"metadata": {"correlation_id": job_ids}}
    return pattern


def queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """Lets EventBridge (for this rule only) send to the queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


class EventTap:
    """A temporary queue and rule on ``bus``; a context manager that always cleans up after itself."""

    def __init__(
        self,
        bus: str,
        pattern: dict[str, Any],
        *,
        session: boto3.session.Session | None = None,
        name: str | None = None,
    ) -> None:
        session = session or boto3.session.Session()
        self.bus = bus
        self.pattern = pattern
        self.name = name or QUEUE_PREFIX + uuid.uuid4().hex[:12]
        self.events = session.client("events")
        self.sqs = session.client("sqs")
        self.s3 = session.client("s3")
        self.queue_url: str | None = None
        self.rule_made = False
        self.target_added = False
        self.cleanup_failures: list[str] = []

    def __enter__(self) -> EventTap:
        try:
            self.create()
        except BaseException:
            self.cleanup_failures = self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup_failures = self.remove()

    def create(self) -> None:
        self.events.describe_event_bus(Name=self.bus)  # a clear error for a bus that does not exist
        self.queue_url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        rule_arn = self.events.put_rule(
            Name=self.name,
            EventBusName=self.bus,
            EventPattern=json.dumps(self.pattern),
            State="ENABLED",
            Description="sdmw events tail: removed when the command ends",
        )["RuleArn"]
        self.rule_made = True
        self.sqs.set_queue_attributes(
            QueueUrl=self.queue_url, Attributes={"Policy": json.dumps(queue_policy(queue_arn, rule_arn))}
        )
        self.events.put_targets(Rule=self.name, EventBusName=self.bus, Targets=[{"Id": "tail", "Arn": queue_arn}])
        self.target_added = True

    def remove(self) -> list[str]:
        """Removes what was made, each step tried even if one before it failed; answers the failures."""
        failures = []
        name, bus = self.name, self.bus
        steps: list[tuple[bool, Callable[[], Any]]] = [
            (self.target_added, lambda: self.events.remove_targets(Rule=name, EventBusName=bus, Ids=["tail"])),
            (self.rule_made, lambda: self.events.delete_rule(Name=self.name, EventBusName=self.bus)),
            (self.queue_url is not None, lambda: self.sqs.delete_queue(QueueUrl=self.queue_url)),
        ]
        for needed, step in steps:
            if not needed:
                continue
            try:
                step()
            except Exception as error:
                failures.append(f"{type(error).__name__}: {error}")
        self.target_added = self.rule_made = False
        self.queue_url = None
        return failures

    def poll(self, wait_s: int = MAX_WAIT_S) -> list[dict[str, Any]]:
        """The events that arrived (waiting up to ``wait_s``), deleted from the queue, claims resolved."""
        if self.queue_url is None:
            raise RuntimeError("the tap is not open")
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=max(0, min(wait_s, MAX_WAIT_S))
        )
        events = []
        for message in answer.get("Messages", []):
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            try:
                event = json.loads(message["Body"])
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(self.resolve(event))
        events.sort(key=lambda e: (e.get("time") or "", occurred_at(e)))
        return events

    def resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event with its claimed data (``detail.data_s3_uri``) read back from S3 into ``detail.data``."""
        detail = event.get("detail")
        if not isinstance(detail, dict) or not detail.get("data_s3_uri"):
            return event
        bucket, key = split_s3_uri(detail["data_s3_uri"])
        data = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        resolved = {k: v for k, v in detail.items() if k != "data_s3_uri"}
        return {**event, "detail": {**resolved, "data": data}}


def follow(
    tap: EventTap,
    on_event: Callable[[dict[str, Any]], None],
    *,
    stop: Callable[[], bool] = lambda: False,
    wait_s: int = MAX_WAIT_S,
) -> int:
    """Polls ``tap`` and hands each event to ``on_event`` until ``stop()``; answers how many were handled."""
    handled = 0
    while not stop():
        for event in tap.poll(wait_s):
            on_event(event)
            handled += 1
            if stop():
                break
    return handled


# ---------------------------------------------------------------- reading an event


def _detail(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail")
    return detail if isinstance(detail, dict) else {}


def _metadata(event: dict[str, Any]) -> dict[str, Any]:
    metadata = _detail(event).get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def data_of(event: dict[str, Any]) -> dict[str, Any]:
    data = _detail(event).get("data")
    return data if isinstance(data, dict) else {}


def occurred_at(event: dict[str, Any]) -> str:
    return str(_metadata(event).get("occurred_at") or event.get("time") or "")


def summary_line(event: dict[str, Any]) -> str:
    """``time  detail-type  entity id  status``, then the job's progress (or ``deleted``): one line per event."""
    data = data_of(event)
    entity = data.get("id") or data.get("job_id") or _metadata(event).get("correlation_id") or "-"
    status = "deleted" if data.get("deleted_at") else data.get("status") or "-"
    line = f"{occurred_at(event)}  {event.get('detail-type', '?'):<28} {entity}  {status}"
    progress = data.get("progress")
    if progress and status in ("-", "inprogress", "Training", "Initialed"):
        line += f"  {progress_line(progress)}"
    return line


def progress_line(progress: dict[str, Any]) -> str:
    """``txt2img image 1/2 step 7/20, loss 0.12, ~15 s left``: a progress report (``JobProgress``) in a few words."""
    text = " ".join(
        part
        for part in (
            str(progress.get("phase", "")),
            f"image {progress['image']}/{progress['images']}"
            if progress.get("image") and progress.get("images")
            else "",
            f"step {progress.get('step', 0)}/{progress['total_steps']}" if progress.get("total_steps") else "",
        )
        if part
    )
    if progress.get("loss") is not None:
        text += f", loss {progress['loss']:.4g}"
    if progress.get("learning_rate") is not None:
        text += f", lr {progress['learning_rate']:.3g}"
    if progress.get("eta_s") is not None:
        text += f", ~{progress['eta_s']:.0f} s left"
    return text


# ---------------------------------------------------------------- forwarding as Standard Webhooks


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def message_id(event: dict[str, Any]) -> str:
    """Stable per event: redeliveries of one event (same ``metadata.event_id``) share it."""
    return "msg_" + str(_metadata(event).get("event_id") or event.get("id") or uuid.uuid4().hex)


def delivery_body(event: dict[str, Any]) -> str:
    body = {"type": event.get("detail-type"), "timestamp": occurred_at(event), "data": data_of(event)}
    return json.dumps(body, separators=(",", ":"))


def signed_request(event: dict[str, Any], secret: str, now: datetime | None = None) -> tuple[str, dict[str, str]]:
    """The body and the headers of ``event`` as a Standard Webhooks delivery signed with ``secret``."""
    body = delivery_body(event)
    msg_id = message_id(event)
    signed_at = (now or datetime.now(UTC)).astimezone(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, signed_at, body),
    }
    return body, headers


def forward(http: httpx.Client, url: str, event: dict[str, Any], secret: str) -> int:
    """POSTs the delivery; answers the receiver's status code. Transport errors are the caller's."""
    body, headers = signed_request(event, secret)
    return http.post(url, content=body.encode(), headers=headers).status_code
