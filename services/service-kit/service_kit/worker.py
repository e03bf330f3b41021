"""The local long-polling worker: runs a service's ``Consumer`` the way the
Lambda SQS event source does.

It receives up to ten messages with long polling (aiobotocore), hands them to
``Consumer.handle_batch`` in Lambda's event shape, deletes what succeeded and
makes each failure visible again after a short back-off, so the queue's
redrive policy moves a message that keeps failing to the dead-letter queue.
SIGTERM/SIGINT stop it after the batch in hand, or after the long poll in
flight (at most ``LONG_POLL_S``), whose messages it hands back at once.

Receiving takes a short lease, then extends it. A long poll goes on in the
queue after its caller is gone (``kill -9``, or a poll cancelled at stop): a
message that arrives meanwhile is received for nobody and stays invisible for
the visibility it was received with. So messages are received with a lease of
``RECEIVE_LEASE_S`` and only the worker that got them extends it to the
queue's visibility timeout, while it handles them (the extension is not on a
job's path): a message received for nobody is back within the lease, not the
visibility timeout. The Lambda context's deadline (which
Powertools' idempotency uses as the in-progress record's expiry) is taken
before the extension, so when a killed worker's messages come back, their
in-progress records have already expired and they run at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiobotocore.session import get_session
from aws_lambda_powertools import Logger

from service_kit.config import ServiceSettings
from service_kit.consumer import Consumer
from service_kit.resources import ServiceResources

RECEIVE_BATCH = 10
#: Short, so that stopping can wait for the poll in flight to end and hand back what it took.
LONG_POLL_S = 3
STOP_POLL_MARGIN_S = 2
#: How long a received message stays invisible before the worker that got it extends its visibility.
RECEIVE_LEASE_S = 10


@dataclass
class LocalLambdaContext:
    """The slice of Lambda's context object that Powertools reads."""

    function_name: str
    deadline: float
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = ""
    aws_request_id: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def retry_delay_s(receive_count: int) -> int:
    """Back-off before a failed message is seen again: 1, 2, 4, ... up to 30 s."""
    return min(30, 2 ** max(0, receive_count - 1))


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class Worker:
    def __init__(
        self,
        consumer: Consumer,
        queue_url: str,
        logger: Logger,
        *,
        visibility_timeout_s: int = 60,
        long_poll_s: int = LONG_POLL_S,
        receive_lease_s: int = RECEIVE_LEASE_S,
        batch_size: int = RECEIVE_BATCH,
    ) -> None:
        self._consumer = consumer
        self._queue_url = queue_url
        self._logger = logger
        self._visibility_timeout_s = visibility_timeout_s
        self._long_poll_s = long_poll_s
        self._receive_lease_s = max(1, min(receive_lease_s, visibility_timeout_s))
        self._batch_size = max(1, min(batch_size, RECEIVE_BATCH))
        self._stop = asyncio.Event()
        self._region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        session = get_session()
        async with session.create_client("sqs", region_name=self._region) as sqs:
            attrs = await sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])
            queue_arn = attrs["Attributes"]["QueueArn"]
            self._logger.info("worker started", extra={"queue_url": self._queue_url})
            while not self._stop.is_set():
                messages = await self._receive(sqs)
                if messages:
                    # Taken before the extension: an in-progress record never outlives the message's invisibility.
                    deadline = time.monotonic() + self._visibility_timeout_s
                    # Extended while the batch runs, not before: the lease has seconds to spare, a job has not.
                    extension = asyncio.ensure_future(self._extend(sqs, messages))
                    await self._process(sqs, messages, queue_arn, deadline, extension)
            self._logger.info("worker stopped")

    async def _receive(self, sqs: Any) -> list[dict[str, Any]]:
        receive = asyncio.ensure_future(
            sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=self._batch_size,
                WaitTimeSeconds=self._long_poll_s,
                VisibilityTimeout=self._receive_lease_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        )
        stopping = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if receive not in done:
            await self._end_poll_and_release(sqs, receive)
            return []
        try:
            return receive.result().get("Messages", [])
        except Exception:
            self._logger.exception("receive failed; retrying")
            await asyncio.sleep(1)
            return []

    async def _end_poll_and_release(self, sqs: Any, receive: asyncio.Future) -> None:
        """Stopping during a poll: a poll cancelled here would go on in the queue and take
        messages for nobody. Let it end (it is short) and hand back at once what it took.
        If it does not end in time, cancel it: what it takes comes back after the lease."""
        done, _ = await asyncio.wait({receive}, timeout=self._long_poll_s + STOP_POLL_MARGIN_S)
        if receive not in done:
            receive.cancel()
            return
        try:
            messages = receive.result().get("Messages", [])
            if messages:
                await sqs.change_message_visibility_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(messages)
                    ],
                )
        except Exception:
            self._logger.exception("could not hand back what the last poll took; it comes back after the lease")

    async def _extend(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        """Extend the lease to the visibility timeout. A message whose extension failed comes back after the
        lease; its handler is idempotent, as every handler must be for SQS's at-least-once delivery."""
        try:
            answer = await sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self._visibility_timeout_s}
                    for i, m in enumerate(messages)
                ],
            )
        except Exception:
            self._logger.exception("could not extend the visibility of received messages; they come back")
            return
        for failure in answer.get("Failed", []):
            self._logger.warning("could not extend a message's visibility; it comes back", extra={"failure": failure})

    async def _process(
        self, sqs: Any, messages: list[dict[str, Any]], queue_arn: str, deadline: float, extension: asyncio.Future
    ) -> None:
        event = {"Records": [lambda_record(m, queue_arn, self._region) for m in messages]}
        context = LocalLambdaContext(
            function_name=self._logger.service,
            deadline=deadline,
            aws_request_id=str(uuid.uuid4()),
        )
        result = await asyncio.to_thread(self._consumer.handle_batch, event, context)
        await extension  # so a later visibility change (a retry's back-off) is not undone by it
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            await sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        for message in messages:
            if message["MessageId"] in failed:
                receive_count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                await sqs.change_message_visibility(
                    QueueUrl=self._queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=retry_delay_s(receive_count),
                )


def run_worker(*workers: Worker) -> None:
    """Run the workers side by side until SIGTERM or SIGINT, then let each finish its batch in hand and exit."""

    def stop() -> None:
        for worker in workers:
            worker.stop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # Each worker hands its batch to a thread; the default pool (a few threads on a small machine)
        # would make more workers wait for one.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=len(workers) + 4))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        await asyncio.gather(*(worker.run() for worker in workers))

    asyncio.run(main())


def local_hold_s(resources: ServiceResources) -> int:
    """How long the local worker holds a message it runs: its function's timeout, as Lambda caps a run.

    On AWS the queue's visibility is six times that (so a throttled batch is not dead-lettered early);
    locally there is no throttling, and a message a killed worker held comes back after one run's time.
    """
    timeouts = [function.timeout_s for function in resources.functions if function.trigger == "queue"]
    return max(timeouts) if timeouts else resources.queue.visibility_timeout_s


def run_service_worker(
    consumer: Consumer,
    settings: ServiceSettings,
    logger: Logger,
    resources: ServiceResources,
    *more_consumers: Consumer,
) -> None:
    """Run a service's consumer on its queue, holding each message for its function's timeout, in the batches
    it declared.

    Each of ``more_consumers`` polls the same queue beside the first, as Lambda runs several invocations
    of a function at once: a service whose messages may each take long (a webhook delivery waiting on a
    slow receiver) declares batches of one and runs several, so one slow message holds up no other.
    """
    if not settings.queue_url or resources.queue is None:
        raise RuntimeError(f"{settings.service} has no queue to poll (SDMW_QUEUE_URL)")
    queue_functions = [function for function in resources.functions if function.trigger == "queue"]
    batch_size = queue_functions[0].batch_size if queue_functions else RECEIVE_BATCH
    run_worker(
        *(
            Worker(
                each,
                settings.queue_url,
                logger,
                visibility_timeout_s=local_hold_s(resources),
                batch_size=batch_size,
            )
            for each in (consumer, *more_consumers)
        )
    )
