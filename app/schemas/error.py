"""The body of every error response, for the OpenAPI description."""

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    detail: Any
    code: str
