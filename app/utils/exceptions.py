"""The errors services raise; one handler turns them into JSON HTTP responses.

Services raise these where a problem is found and never deal with status codes themselves;
``app.errors`` maps each class to a response ``{"detail": ..., "code": ...}``.
"""

from typing import ClassVar


class AppError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"


class ConflictError(AppError):
    status_code = 409
    code = "conflict"


class AuthenticationError(AppError):
    status_code = 401
    code = "not_authenticated"

    def __init__(self, detail: str = "Could not validate credentials") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class UnknownModelError(AppError):
    status_code = 400
    code = "unknown_model"


class UnsupportedImageError(AppError):
    status_code = 415
    code = "unsupported_image_type"


class InvalidImageError(AppError):
    status_code = 422
    code = "invalid_image"


class ImageTooLargeError(AppError):
    status_code = 422
    code = "image_too_large"


class PayloadTooLargeError(AppError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequestsError(AppError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class ServiceBusyError(AppError):
    status_code = 503
    code = "service_busy"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class StorageFullError(AppError):
    status_code = 507
    code = "storage_full"


class StorageUnavailableError(ServiceBusyError):
    """The image store cannot be written (read-only, gone, refusing): maybe soon it can."""

    code = "storage_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after=30)


class InferenceTimeoutError(AppError):
    status_code = 504
    code = "inference_timeout"


class ClientGoneError(AppError):
    # nginx's "client closed request": nobody is left to read it, but the log line says why.
    status_code = 499
    code = "client_closed_request"


class ModelUnavailableError(ServiceBusyError):
    """A model failed to load: an operator has to act, so clients are told to wait a while."""

    code = "model_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after=30)


class InferenceFailedError(AppError):
    status_code = 500
    code = "inference_failed"


class StartupError(Exception):
    """The service cannot start; the message says why in one line."""
