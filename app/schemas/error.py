"""The body of every error response, and the `responses=` that document them in OpenAPI."""

from typing import Any

from pydantic import BaseModel, Field

# What each error status means on this API; a route lists the ones it can answer.
ERROR_DESCRIPTIONS = {
    400: "Bad request, e.g. an unknown model (`unknown_model`; the detail lists the models)",
    401: "Missing, invalid or expired token (`not_authenticated`)",
    404: "Not found, or not yours (`not_found`)",
    409: "Conflict: already taken or already exists (`conflict`)",
    413: "Request body over the size limit (`payload_too_large`)",
    415: "Not a JPEG, PNG, BMP or GIF image (`unsupported_image_type`)",
    422: "Invalid input: `validation_error` (detail lists the fields), `invalid_image` "
    "(corrupt or truncated) or `image_too_large` (too many pixels)",
    429: "Too many attempts; wait `Retry-After` seconds (`too_many_requests`)",
    499: "The client left before the answer was ready (`client_closed_request`)",
    503: "Busy or unavailable; retry after `Retry-After` seconds (`service_busy`, "
    "`model_unavailable`, `storage_unavailable`)",
    504: "The model did not answer in time (`inference_timeout`)",
    507: "No room left to store images (`storage_full`)",
}


class ErrorOut(BaseModel):
    detail: Any = Field(description="What went wrong: a sentence, or for 422 a list of fields")
    code: str = Field(description="A stable snake_case reason, e.g. `not_found`")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the given error statuses, each with the ErrorOut body."""
    return {
        status: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }
