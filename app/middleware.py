"""ASGI middleware: request ids and one log line per request, security headers, body limits."""

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
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            elif message["type"] == "websocket.close":
                status_code = message.get("code", 1000)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here rather than by Starlette's outermost handler, so that the error
            # is JSON, carries the request id, and is logged with it (also when DEBUG is on).
            logger.exception("unhandled error in %s %s", scope.get("method", "WS"), scope["path"])
            if scope["type"] == "http" and not response_started:
                response = error_response(500, "internal server error", "internal_error")
                await response(scope, receive, send_with_id)
        finally:
            # The path only: query strings can carry tokens (WebSocket ?token=).
            method = scope.get("method", "WS")
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.info("%s %s %s %.1fms", method, scope["path"], status_code, elapsed_ms)
            request_id_var.reset(token)


# On every response: nothing is sniffed into another type (a stored "image" that is really
# HTML stays inert), no page of ours is framed, and no URL leaks to other sites.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimitMiddleware:
    """Refuses a request as soon as its body grows past its path's limit, before it is all read.

    Uploads get the upload limit; every other body (JSON, the login form) the small body limit.
    """

    def __init__(
        self, app: ASGIApp, *, upload_paths: set[str], max_upload_size: int, max_body_size: int
    ) -> None:
        self.app = app
        self.upload_paths = upload_paths
        self.max_upload_size = max_upload_size
        self.max_body_size = max_body_size

    def _limits(self, path: str) -> tuple[int, int]:
        """The limit to report, and the body size allowed on the wire for it."""
        if path in self.upload_paths:
            return self.max_upload_size, self.max_upload_size + MULTIPART_OVERHEAD_BYTES
        return self.max_body_size, self.max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, allowed = self._limits(scope["path"])
        too_large = HTTPException(
            status_code=413,
            detail=f"request body is larger than the limit of {limit} bytes "
            f"({limit / 1024 / 1024:.1f} MiB)",
        )
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > allowed:
            # Outside the exception handlers here, so answer directly, without reading the body.
            response = error_response(413, too_large.detail, "payload_too_large")
            await response(scope, receive, send)
            return
        received = 0

        # Raised from inside the route's body parsing, so the normal error handler answers.
        async def receive_with_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > allowed:
                    raise too_large
            return message

        await self.app(scope, receive_with_limit, send)
