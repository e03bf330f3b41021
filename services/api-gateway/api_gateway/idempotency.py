"""``Idempotency-Key``: a retried creating request gets the first answer, never a second job.

A client that sent a request and got no answer (a dropped connection, an edge that died) cannot know
whether it was carried out; sending it again with the same ``Idempotency-Key`` header (as Stripe's,
GitHub's and the IETF draft's APIs take it) is safe:

- the first request with a key claims it (a versioned row of the edge's table: one writer of a version
  wins), runs, and its answer is kept for :data:`KEPT_FOR`;
- a retry with the same key, by the same API key, to the same method and path, with the same body and
  query, gets that answer again (marked ``Idempotent-Replayed: true``) and nothing runs;
- the same key with a different request is refused (422), and a retry while the first is still running
  gets 409; a claim whose request died with its edge is free again after :data:`RUNNING_AT_MOST`;
- a 5xx answer is not kept (the request was not carried out): a retry runs it;
- what the request creates gets ids derived from the key and the request (``api_gateway.ids``): if its
  edge died after sending the command and before answering, the retry sends the same command again,
  which the owner takes as a redelivery: one job, whichever attempt is answered.

Only ``POST``, ``PUT``, ``PATCH`` and ``DELETE`` with the header are concerned; everything else passes.
It sits inside the API key check, so only a valid key can claim one, and keys of different API keys never
meet (the row's id is a digest of both).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool

from api_gateway.ids import derived_from
from sdmw_contracts.envelope import EntityChanged
from service_kit.snapshots import StaleWrite

HEADER = b"idempotency-key"
REPLAYED_HEADER = b"idempotent-replayed"
METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_CHARS = 255
#: How long an answer is replayed (then the row expires through the table's TTL).
KEPT_FOR = timedelta(hours=24)
#: A claim older than this belongs to a request that died (API Gateway ends a request at 29 s).
RUNNING_AT_MOST = timedelta(seconds=60)
#: Tries to claim a key before answering 409 (each lost race means another request just wrote it).
CLAIM_ATTEMPTS = 3


class IdempotentAnswer(EntityChanged):
    """The edge's own row for one key: running, or the answer to replay (never published)."""

    fingerprint: str
    started_at: datetime
    status: int | None = None
    headers: list[tuple[str, str]] = []
    body: str = ""  # base64

    @classmethod
    def entity_type(cls) -> str:
        return "IdempotentAnswer"

    def expires_at(self) -> datetime:
        return self.started_at + KEPT_FOR


Store = Any  # the edge's ReadModel: get, record (version-conditioned), forget


class IdempotencyMiddleware:
    def __init__(self, app: Any, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._app = app
        self._clock = clock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers", [])) if scope["type"] == "http" else {}
        key = headers.get(HEADER)
        if key is None or scope.get("method") not in METHODS:
            await self._app(scope, receive, send)
            return
        text = key.decode("latin-1")
        if not 0 < len(text) <= MAX_KEY_CHARS or not text.isprintable() or not text.isascii():
            await _answer(send, 400, f"Idempotency-Key: 1 to {MAX_KEY_CHARS} printable ASCII characters")
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away, or the body was over the limit (answered 413 outside)
        store: Store = scope["app"].state.deps.read_model
        entity_id = _digest(headers.get(b"x-api-key", b""), scope["method"].encode(), scope["path"].encode(), key)
        fingerprint = _digest(scope.get("query_string", b""), body)
        claimed = await run_in_threadpool(self._claim, store, entity_id, fingerprint)
        if isinstance(claimed, tuple):
            await _answer(send, *claimed)
            return
        if claimed.status is not None:
            await _replay(send, claimed)
            return
        await self._run_and_keep(scope, body, send, store, claimed)

    def _claim(self, store: Store, entity_id: str, fingerprint: str) -> IdempotentAnswer | tuple[int, str]:
        """The new claim, the kept answer, or (status, message) to refuse with."""
        now = self._clock()
        for _ in range(CLAIM_ATTEMPTS):
            held = store.get(IdempotentAnswer, entity_id)
            if held is not None and held.fingerprint != fingerprint:
                return 422, "this Idempotency-Key was used for another request: use a new key for a new request"
            if held is not None and held.status is not None:
                return held
            if held is not None and now - held.started_at < RUNNING_AT_MOST:
                return 409, "a request with this Idempotency-Key is still being carried out: retry once it ended"
            claim = IdempotentAnswer(
                id=entity_id, version=(held.version + 1) if held else 1, fingerprint=fingerprint, started_at=now
            )
            try:
                store.record(claim)
                return claim
            except StaleWrite:
                continue
        return 409, "a request with this Idempotency-Key is still being carried out: retry once it ended"

    async def _run_and_keep(
        self, scope: dict[str, Any], body: bytes, send: Any, store: Store, claim: IdempotentAnswer
    ) -> None:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            with derived_from(claim.id + claim.fingerprint):  # a retry after a crash names the same entities
                await self._app(scope, _replayed_receive(body), capture)
        except BaseException:
            await run_in_threadpool(store.forget, claim)  # not carried out: a retry runs it
            raise
        answer = b"".join(chunks)
        status = start.get("status", 500)
        if status >= 500:
            await run_in_threadpool(store.forget, claim)
        else:
            kept = claim.model_copy(
                update={
                    "version": claim.version + 1,
                    "status": status,
                    "headers": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])],
                    "body": base64.b64encode(answer).decode(),
                }
            )
            await run_in_threadpool(store.record, kept)
        await send({**start, "type": "http.response.start"})
        await send({"type": "http.response.body", "body": answer})


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


async def _read_body(receive: Any) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replayed_receive(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _replay(send: Any, kept: IdempotentAnswer) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in kept.headers] + [(REPLAYED_HEADER, b"true")]
    await send({"type": "http.response.start", "status": kept.status, "headers": headers})
    await send({"type": "http.response.body", "body": base64.b64decode(kept.body)})


async def _answer(send: Any, status: int, message: str) -> None:
    body = json.dumps({"statusCode": status, "error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
