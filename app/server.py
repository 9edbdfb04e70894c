"""Serving the app with uvicorn, with bounds on what one client can make the server hold, and
a start-up failure said in one line.

uvicorn's fast HTTP/1.1 protocol (httptools) puts no limit on a request's head: a single
64 MB header is parsed by repeated concatenation, which holds the event loop, and every other
request with it, for seconds. Nor does it close a connection that stops half way through a
request. ``BoundedHttpProtocol`` adds both bounds before the parser sees the bytes.
"""

import asyncio
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import ServerSettings
from app.middleware import SECURITY_HEADERS
from app.utils.exceptions import StartupError

HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    + b"".join(f"{name}: {value}\r\n".encode() for name, value in SECURITY_HEADERS.items())
    + b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


# What a request still arriving must bring in every window of REQUEST_IDLE_TIMEOUT: about
# 34 bytes a second for the default 30 s, far below any real client, far above a trickle.
MIN_BYTES_PER_WINDOW = 1024


class HeadTooLargeError(Exception):
    """Too many header lines, or a head too large that came in one read (raised inside the
    parser; uvicorn answers 400 and closes the connection)."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """HTTP/1.1 with a bounded request head, and requests that must keep arriving.

    While a request is incomplete, each ``idle_timeout`` window must bring at least
    ``MIN_BYTES_PER_WINDOW`` bytes, or the connection is closed: a client that stops, or
    trickles a byte now and then, cannot hold a connection for ever. The head as a whole must
    also arrive within ``idle_timeout``. The limits are class attributes, set by ``serve``
    from the settings, because uvicorn builds one protocol object per connection itself.
    """

    max_head_bytes = 32 * 1024
    max_headers = 100
    idle_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._reading_head = True
        self._header_count = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._window_bytes = 0
        # A head trickled a byte at a time is never idle: it gets a deadline as a whole.
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_idle_timer()
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.idle_timeout, self._close)
        self._window_bytes += len(data)
        if self._idle_timer is None:
            self._arm_idle_timer()
        # One read (at most 256 KB) costs the parser little; the repeated reads of a head that
        # never ends are what must stop. A read that also carries the start of the body
        # completes the head, and is not held against it.
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.max_head_bytes:
            self._refuse_head()

    def handle_websocket_upgrade(self) -> None:
        # A WebSocket is quiet for as long as it likes; its own protocol takes over here.
        self._cancel_idle_timer()
        super().handle_websocket_upgrade()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            raise HeadTooLargeError(f"more than {self.max_headers} header lines")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel_head_timer()
        # A head that came in one read was not counted as it arrived: count it now.
        head_bytes = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if head_bytes > self.max_head_bytes:
            raise HeadTooLargeError(
                f"request line and headers are over {self.max_head_bytes} bytes"
            )
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # The whole request is in: from here the app's time is its own, not the client's.
        self._cancel_idle_timer()
        self._reading_head = True
        self._head_bytes = 0
        self._window_bytes = 0
        super().on_message_complete()

    def _refuse_head(self) -> None:
        self._cancel_idle_timer()
        self._cancel_head_timer()
        body = (
            b'{"detail":"request line and headers are larger than %d bytes",'
            b'"code":"request_header_fields_too_large"}' % self.max_head_bytes
        )
        self.transport.write(HEAD_TOO_LARGE % (len(body), body))
        self.transport.close()

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        self._idle_timer = self.loop.call_later(self.idle_timeout, self._check_progress)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _check_progress(self) -> None:
        self._idle_timer = None
        if self._window_bytes < MIN_BYTES_PER_WINDOW:
            self._close()
            return
        self._window_bytes = 0
        self._arm_idle_timer()

    def _close(self) -> None:
        # A request that stopped or crawls: nobody can be waiting for its answer.
        if not self.transport.is_closing():
            self.transport.close()


class OneLineStartupFailure:
    """When start-up fails with a StartupError, uvicorn reports its message, not a traceback.

    Starlette answers a failed lifespan with the whole traceback as the failure message, and
    uvicorn logs that message. The failure is held back until the exception arrives, then
    sent as the StartupError's one line.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except StartupError as exc:
            await send({"type": "lifespan.startup.failed", "message": f"error: {exc}"})
            raise
        except BaseException:
            for message in held:
                await send(message)
            raise


def serve(app: FastAPI, settings: ServerSettings) -> None:
    """Serve the app on the configured address until interrupted."""
    BoundedHttpProtocol.max_head_bytes = settings.max_head_bytes
    BoundedHttpProtocol.max_headers = settings.max_headers
    BoundedHttpProtocol.idle_timeout = settings.request_idle_timeout
    # log_config=None keeps the logging set up by create_app (request ids, app.log).
    uvicorn.run(
        OneLineStartupFailure(app),
        host=settings.host,
        port=settings.port,
        http=BoundedHttpProtocol,
        timeout_keep_alive=settings.keep_alive_timeout,
        # Connections (and requests) beyond this get a 503 from uvicorn: a client opening
        # thousands of them cannot exhaust the process's file descriptors.
        limit_concurrency=settings.max_connections,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: anyone on this host could
        # then pick the address its logins are counted under. Only configured proxies are.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        log_config=None,
        access_log=False,
    )
