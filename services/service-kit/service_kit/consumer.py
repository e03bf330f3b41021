"""The consumer runtime: one handler, run as a Lambda SQS handler in AWS and by
the local long-polling worker in ``make up``, with the same batch semantics.

- A batch is processed with Powertools' ``BatchProcessor``; failed records are
  reported as partial batch failures, so only they are redelivered. After the
  queue's ``maxReceiveCount`` they land in the dead-letter queue: nothing is
  silently dropped.
- Each message is processed once per idempotency key (the event id, or the SNS
  message id) using Powertools idempotency on the service's table, so
  redeliveries and duplicates have no second effect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from service_kit import aws
from service_kit.messages import BusEvent, Message, SnsNotification, parse_message
from service_kit.tracing import reset_trace_header, set_trace_header

BusHandler = Callable[[BusEvent], None]
SnsHandler = Callable[[SnsNotification], None]


class NoHandler(LookupError):
    """A message reached a queue whose service has no handler for it."""


class ClaimResolver(Protocol):
    """Reads a claim-checked event's data back from S3 (``service_kit.claims.EventClaims``)."""

    def resolve(self, detail: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class Router:
    """Maps incoming messages to handler functions."""

    events: dict[str, BusHandler] = field(default_factory=dict)
    topics: dict[str, SnsHandler] = field(default_factory=dict)

    def on_event(self, detail_type: str, handler: BusHandler) -> Router:
        self.events[detail_type] = handler
        return self

    def on_topic(self, topic_suffix: str, handler: SnsHandler) -> Router:
        self.topics[topic_suffix] = handler
        return self

    def dispatch(self, message: Message) -> None:
        if isinstance(message, BusEvent):
            handler = self.events.get(message.detail_type)
            if handler is None:
                raise NoHandler(f"no handler for event {message.detail_type!r}")
            handler(message)
            return
        for suffix, topic_handler in self.topics.items():
            if message.topic_name.endswith(suffix):
                topic_handler(message)
                return
        raise NoHandler(f"no handler for notifications of topic {message.topic_name!r}")


def dynamodb_idempotency(table_name: str) -> DynamoDBPersistenceLayer:
    """Idempotency records in the service's own table (pk/sk keys)."""
    return DynamoDBPersistenceLayer(
        table_name=table_name, key_attr="pk", sort_key_attr="sk", boto3_client=aws.client("dynamodb")
    )


class Consumer:
    def __init__(
        self,
        router: Router,
        logger: Logger,
        idempotency_store: BasePersistenceLayer | None,
        idempotency_ttl_s: int = 24 * 3600,
        claims: ClaimResolver | None = None,
    ) -> None:
        self._router = router
        self._logger = logger
        self._claims = claims
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=idempotency_ttl_s,
        )
        if idempotency_store is None:
            self._process = self._dispatch_body
        else:
            self._process = idempotent_function(
                data_keyword_argument="message",
                persistence_store=idempotency_store,
                config=self._config,
            )(self._dispatch_body)

    @property
    def reads_claims(self) -> bool:
        """Whether events that came by claim check (over EventBridge's 256 KB) can be handled."""
        return self._claims is not None

    def handle_batch(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The Lambda SQS handler. Answers ``{"batchItemFailures": [...]}``."""
        self._config.register_lambda_context(context)
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(
            event=event, record_handler=self._handle_record, processor=processor, context=context
        )

    def _handle_record(self, record: SQSRecord) -> None:
        message = parse_message(record.body)
        correlation_id, trace_header = _correlation_of(message)
        self._logger.set_correlation_id(correlation_id)
        self._logger.append_keys(trace_header=trace_header, message_id=record.message_id)
        token = set_trace_header(trace_header)
        try:
            self._process(message={"key": message.idempotency_key, "body": record.body})
            self._logger.info("message handled", extra={"kind": _kind(message)})
        except Exception:
            self._logger.exception(
                "message failed; it will be redelivered",
                extra={"kind": _kind(message), "receive_count": record.attributes.approximate_receive_count},
            )
            raise
        finally:
            reset_trace_header(token)
            self._logger.remove_keys(["trace_header", "message_id"])
            self._logger.set_correlation_id(None)

    def _dispatch_body(self, message: dict[str, Any]) -> bool:
        parsed = parse_message(message["body"])
        if isinstance(parsed, BusEvent) and parsed.detail.get("data_s3_uri"):
            # A claim-checked event: its data is read back from S3 here, so handlers never know.
            if self._claims is None:
                raise NoHandler(f"{parsed.detail_type} came by claim check and this consumer reads no claims")
            parsed = replace(parsed, detail=self._claims.resolve(parsed.detail))
        self._router.dispatch(parsed)
        return True


def _kind(message: Message) -> str:
    return message.detail_type if isinstance(message, BusEvent) else f"sns:{message.topic_name}"


def _correlation_of(message: Message) -> tuple[str | None, str | None]:
    if isinstance(message, BusEvent) and message.is_project_event:
        metadata = message.envelope().metadata
        return metadata.correlation_id, metadata.trace_header
    return None, None
