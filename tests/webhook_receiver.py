"""A real webhook receiver for tests: an HTTP server on a free loopback port, in a thread. It checks each
request's signature with the documented `webhooks.signing.verify`, records it, and answers what the
test's `answer` says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.waiting import until, until_async
from webhooks.signing import HEADER, InvalidSignature, verify


@dataclass(frozen=True)
class Received:
    path: str
    delivery: str
    event_type: str
    body: bytes
    headers: dict[str, str]
    signed: bool  # the signature verified with the path's secret
    status: int  # what the receiver answered
    at: float  # time.monotonic()

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class Receiver:
    def __init__(self, answer: Callable[[str, list[Received]], int] = lambda path, before: 204) -> None:
        """`answer(path, earlier requests)` gives the status of each request."""
        self.answer = answer
        self.secrets: dict[str, str] = {}  # path -> the subscription's secret
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    verify(receiver.secrets.get(self.path, ""), body, self.headers.get(HEADER, ""))
                    signed = True
                except InvalidSignature:
                    signed = False
                with receiver._lock:
                    status = receiver.answer(self.path, list(receiver.received)) if signed else 400
                    receiver.received.append(
                        Received(
                            path=self.path,
                            delivery=self.headers.get("x-imagegen-delivery", ""),
                            event_type=self.headers.get("x-imagegen-event", ""),
                            body=body,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            signed=signed,
                            status=status,
                            at=time.monotonic(),
                        )
                    )
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def __repr__(self) -> str:
        with self._lock:
            return f"Receiver(got={[(r.path, r.event_type, r.status) for r in self.received]})"

    def wait(self, done: Callable[[Receiver], bool], timeout: float = 30.0) -> None:
        until(lambda: self, "what the receiver was expected to get", timeout, every=0.02, done=done)

    async def until(self, done: Callable[[Receiver], bool], timeout: float = 30.0) -> None:
        """`wait`, for tests whose event loop runs the dispatcher."""

        async def receiver() -> Receiver:
            return self

        await until_async(receiver, "what the receiver was expected to get", timeout, every=0.02, done=done)
