"""Scheduled rules, locally: neither moto nor LocalStack's free edition fires them.

Puts an EventBridge "Scheduled Event" on each declared service queue every
``every_s`` seconds, shaped as EventBridge delivers it to an SQS target, so the
service handles it exactly as in AWS. Test infrastructure, like the local
SageMaker. Reads ``SDMW_SCHEDULES``: a JSON list of
``{"rule": ..., "queue_url": ..., "every_s": ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from datetime import UTC, datetime

import boto3

from service_kit.resources import SCHEDULED_EVENT


def scheduled_event(rule_arn: str, region: str) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": SCHEDULED_EVENT,
            "source": "aws.events",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [rule_arn],
            "detail": {},
        }
    )


def main() -> None:
    schedules = json.loads(os.environ.get("SDMW_SCHEDULES", "[]"))
    region = os.environ.get("AWS_REGION", "us-east-1")
    sqs = boto3.client("sqs")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ticks = {s["rule"]: 0.0 for s in schedules}
    while not stop.wait(1.0):
        for schedule in schedules:
            ticks[schedule["rule"]] += 1.0
            if ticks[schedule["rule"]] >= schedule["every_s"]:
                ticks[schedule["rule"]] = 0.0
                rule_arn = f"arn:aws:events:{region}:123456789012:rule/{schedule['rule']}"
                sqs.send_message(QueueUrl=schedule["queue_url"], MessageBody=scheduled_event(rule_arn, region))


if __name__ == "__main__":
    main()
