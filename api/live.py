"""A variation's life as it happens: one consumer per API process follows the event log and the progress
topic from their ends and hands each message to the server-sent event streams open for its variation
(the message key), and keeps each family's latest preview (GET /variations/{id}/families/{family}/preview).
Nothing is committed: a stream shows what happens while it is open, after a snapshot from the read model."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from api import endpoint as e
from api.problems import RETRY_LATER, Problem, path_uuid, text
from projections import views
from streams import clients, topics

log = logging.getLogger(__name__)
FOLLOWED = (topics.EVENTS, topics.PROGRESS)
QUEUE_SIZE = 1000  # per stream; a reader this far behind loses progress, never events
PREVIEWS_KEPT = 512  # the latest preview of this many families, the least recently drawn dropped first

Item = tuple[str, str]  # (SSE event name: the message's type, its JSON)


@dataclass(frozen=True)
class Preview:
    round: int
    step: int
    steps: int
    webp: bytes


class LiveFeed:
    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._streams: dict[bytes, set[asyncio.Queue[Item]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.following = asyncio.Event()  # set once the consumer reads from the topics' ends
        self._previews: OrderedDict[tuple[bytes, str], Preview] = OrderedDict()

    def preview(self, variation_id: uuid.UUID, family: str) -> Preview | None:
        """The latest preview of the family's drawing seen since this process started following."""
        return self._previews.get((str(variation_id).encode(), family))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @contextlib.contextmanager
    def subscribe(self, variation_id: uuid.UUID) -> Iterator[asyncio.Queue[Item]]:
        key = str(variation_id).encode()
        queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_SIZE)
        self._streams.setdefault(key, set()).add(queue)
        try:
            yield queue
        finally:
            self._streams[key].discard(queue)
            if not self._streams[key]:
                del self._streams[key]

    async def _run(self) -> None:
        while True:  # the broker may come and go: follow again from the ends
            try:
                await self._follow()
            except KafkaError as exc:
                log.warning("live feed lost the broker (%s); following again", exc)
                self.following.clear()
                await asyncio.sleep(1)

    async def _follow(self) -> None:
        consumer = clients.reader(self.bootstrap_servers)
        await consumer.start()
        try:
            partitions = await _partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)  # resolve the end now, not at the first fetch
            self.following.set()
            while True:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        if record.key and record.value:
                            self._hand(record.key, record.value)
        finally:
            await consumer.stop()

    def _hand(self, key: bytes, value: bytes) -> None:
        previewed = b'"FamilyPreview"' in value
        if key not in self._streams and not previewed:
            return
        try:
            data = json.loads(value)
            kind = data.get("type")
        except (ValueError, AttributeError):
            return  # the dead-letter topic is the consumers' business, not a live view's
        if not isinstance(kind, str):
            return
        if kind == "FamilyPreview":
            self._keep(key, data)
        for queue in self._streams.get(key, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((kind, value.decode()))

    def _keep(self, key: bytes, data: dict[str, Any]) -> None:
        try:
            preview = Preview(
                data["round"], data["step"], data["steps"], base64.b64decode(data["image"], validate=True)
            )
            place = (key, str(data["family"]))
        except (KeyError, TypeError, ValueError, binascii.Error):
            return
        held = self._previews.get(place)
        if held is not None and (held.round, held.step) > (preview.round, preview.step):
            return  # a later round's (or step's) is held already
        self._previews[place] = preview
        self._previews.move_to_end(place)
        while len(self._previews) > PREVIEWS_KEPT:
            self._previews.popitem(last=False)


async def _partitions(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    return await clients.partitions(consumer, *FOLLOWED, timeout=float("inf"))  # the topics may not be made yet


async def stream(feed: LiveFeed, variation_id: uuid.UUID, snapshot: Any) -> AsyncIterator[dict[str, str]]:
    """A variation's SSE stream: `snapshot` (its read-model view, if it has one yet), then each event
    and denoising step as it happens. `snapshot` is awaited once subscribed, so nothing falls
    between the two; what it already shows may come again as an event."""
    with feed.subscribe(variation_id) as queue:
        view = await snapshot()
        if view is not None:
            yield {"event": "snapshot", "data": json.dumps(view)}
        while True:
            kind, data = await queue.get()
            yield {"event": kind, "data": data}


async def follow_variation(request: Request) -> Response:
    """Server-sent events: a `snapshot` of the variation, then every event of its log (named by its
    type), every denoising step (`FamilyProgress`) and preview (`FamilyPreview`) as they happen. Any id
    may be followed before its variation exists, so a client can listen before it posts."""
    vid = path_uuid(request)
    feed: LiveFeed = request.app.state.live
    try:
        await asyncio.wait_for(feed.following.wait(), 10)
    except TimeoutError:
        raise Problem(503, "the event log is unreachable, retry later", headers=RETRY_LATER) from None

    async def snapshot() -> Any:
        async with request.app.state.pool.connection() as conn:
            return await views.variation(conn, vid)

    return EventSourceResponse(stream(feed, vid, snapshot), ping=15, send_timeout=30)


async def get_preview(request: Request) -> Response:
    """The latest preview of a family being drawn: a small WebP of the picture forming."""
    vid, family = path_uuid(request), text(request.path_params["family"], "family")
    found = request.app.state.live.preview(vid, family)
    if found is None:
        raise Problem(404, f"no preview of {family!r} of variation {vid} yet (one comes every few steps of a drawing)")
    headers = {
        "Cache-Control": "no-store",
        "X-Preview-Step": f"{found.step}/{found.steps}",
        "X-Round": str(found.round),
    }
    return Response(found.webp, media_type="image/webp", headers=headers)


ENDPOINTS = (
    e.Endpoint(
        ("GET",),
        "/variations/{id}/live",
        follow_variation,
        e.READ,
        "variations",
        "Server-sent events: a snapshot, then every event, denoising step and preview",
        {
            200: e.Answer(
                "`snapshot`, then one event per message, named by its type",
                None,
                {"text/event-stream": {"schema": {"type": "string"}}},
            ),
            404: e.Answer("not a UUID"),
            **e.UNAVAILABLE,
        },
        (e.VARIATION_ID,),
    ),
    e.Endpoint(
        ("GET",),
        "/variations/{id}/families/{family}/preview",
        get_preview,
        e.READ,
        "variations",
        "The latest preview of a family being drawn",
        {
            200: e.Answer(
                "a small WebP of the picture forming (X-Preview-Step: step/steps)",
                None,
                {"image/webp": {"schema": {"type": "string", "contentMediaType": "image/webp"}}},
            ),
            404: e.Answer("no preview yet (or not a UUID)"),
            422: e.NUL,
        },
        (e.VARIATION_ID, e.path("family", {"type": "string"}, "one of the variation's families")),
    ),
)
