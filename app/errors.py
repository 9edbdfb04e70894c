"""Every error becomes JSON ``{"detail": ..., "code": ...}``, 401 and 422 included.

Unexpected exceptions are answered by ``RequestLogMiddleware``, which knows the request id.
"""

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException

from app.utils.exceptions import AppError

logger = logging.getLogger(__name__)


# Codes for errors raised by the framework itself, matching those of our own errors.
_FRAMEWORK_CODES = {401: "not_authenticated", 413: "payload_too_large", 422: "validation_error"}


def _code_for(status_code: int) -> str:
    if status_code in _FRAMEWORK_CODES:
        return _FRAMEWORK_CODES[status_code]
    try:
        return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


class ErrorJSONResponse(JSONResponse):
    """Escapes non-ASCII: an error may echo input that is not valid UTF-8 (a lone surrogate)."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(
    status_code: int, detail: object, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return ErrorJSONResponse(
        status_code=status_code,
        content={"detail": jsonable_encoder(detail), "code": code},
        headers=headers,
    )


async def app_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.status_code == 503:
        # Shedding load is the service working as designed: worth a warning, not an error.
        logger.warning("%s: %s", exc.code, exc.detail)
    elif exc.status_code >= 500:
        logger.error("%s: %s", exc.code, exc.detail)
    return error_response(exc.status_code, exc.detail, exc.code, exc.headers)


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return error_response(exc.status_code, exc.detail, _code_for(exc.status_code), headers)


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        422, [_without_secrets(error) for error in exc.errors()], "validation_error"
    )


# Fields whose submitted value a validation error must never echo.
SECRET_FIELDS = {"password", "callback_secret", "secret_key", "token", "access_token"}


def _without_secrets(error: Any) -> Any:
    """A validation error with secrets hidden from the input it echoes."""
    if not isinstance(error, dict) or "input" not in error:
        return error
    if any(str(part).lower() in SECRET_FIELDS for part in error.get("loc", ())):
        return {**error, "input": "[hidden]"}
    return {**error, "input": _hide_secret_values(error["input"])}


def _hide_secret_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "[hidden]" if str(key).lower() in SECRET_FIELDS else _hide_secret_values(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hide_secret_values(item) for item in value]
    return value


async def database_busy_handler(request: Request, exc: Exception) -> JSONResponse:
    # No free connection, a writer that waited its whole timeout, or a database gone away:
    # the request may well succeed in a moment.
    logger.warning("database busy or unavailable: %s", str(exc).splitlines()[0])
    request.app.state.services.database.note_failure(exc)
    return error_response(
        503, "the database is busy; try again shortly", "service_busy", {"Retry-After": "5"}
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(PoolTimeoutError, database_busy_handler)
    app.add_exception_handler(OperationalError, database_busy_handler)
