"""ASGI middleware: request ids with one log line per request, and the upload size limit."""

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response
from app.utils.logging_config import request_id_var

logger = logging.getLogger("app.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Multipart framing around the file: boundaries, part headers and the file name.
MULTIPART_OVERHEAD_BYTES = 16 * 1024


class RequestLogMiddleware:
    """Tags each request with an id (the client's X-Request-ID if sane) and logs it once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = incoming if _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_code = 500 if scope["type"] == "http" else 101

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "websocket.close":
                status_code = message.get("code", 1000)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The path only: query strings can carry tokens (WebSocket ?token=).
            method = scope.get("method", "WS")
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.info("%s %s %s %.1fms", method, scope["path"], status_code, elapsed_ms)
            request_id_var.reset(token)


class UploadSizeLimitMiddleware:
    """Refuses an upload as soon as its body grows past the limit, before it is all read."""

    def __init__(self, app: ASGIApp, *, paths: set[str], max_size: int) -> None:
        self.app = app
        self.paths = paths
        self.max_size = max_size
        self.max_body = max_size + MULTIPART_OVERHEAD_BYTES

    def _too_large(self) -> HTTPException:
        return HTTPException(
            status_code=413,
            detail=f"upload is larger than the limit of {self.max_size} bytes "
            f"({self.max_size / 1024 / 1024:.1f} MiB)",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            # Outside the exception handlers here, so answer directly, without reading the body.
            error = self._too_large()
            response = error_response(error.status_code, error.detail, "payload_too_large")
            await response(scope, receive, send)
            return
        received = 0

        # Raised from inside the route's body parsing, so the normal error handler answers.
        async def receive_with_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise self._too_large()
            return message

        await self.app(scope, receive_with_limit, send)
