"""Liveness, and what models this service offers."""

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from app.dependencies import CurrentUser, ReadSession, ServicesDep
from app.schemas.error import error_responses
from app.utils.exceptions import ServiceBusyError

router = APIRouter(tags=["system"])


@router.get("/health", responses=error_responses(503))
def health(session: ReadSession) -> dict[str, str]:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceBusyError(
            f"database unavailable: {type(exc).__name__}", retry_after=5
        ) from exc
    return {"status": "ok", "database": "ok"}


@router.get("/models", responses=error_responses(401))
def list_models(_user: CurrentUser, services: ServicesDep) -> list[dict[str, Any]]:
    return services.models.describe()
