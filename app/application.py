"""Builds the FastAPI application: settings, logging, database, storage, models, routes."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from app.config import ConfigError, Settings, load_settings
from app.container import Services
from app.database.engine import Database, create_db_engine
from app.database.migrate import upgrade_schema
from app.errors import install_error_handlers
from app.middleware import (
    BodySizeLimitMiddleware,
    RequestLogMiddleware,
    SecurityHeadersMiddleware,
)
from app.models.model_interface import model_class
from app.routers import (
    image_router,
    inference_router,
    system_router,
    user_router,
    websocket_router,
)
from app.utils.decode_budget import set_decode_memory
from app.utils.exceptions import AppError, ModelUnavailableError, StartupError
from app.utils.logging_config import setup_logging
from app.utils.memory import limit_malloc_arenas

logger = logging.getLogger(__name__)

API_DESCRIPTION = (
    "Register, upload images, and run pretrained models on them, synchronously or as "
    "background tasks with live WebSocket updates. "
    "Use **Authorize** with your username and password to try the protected routes."
)


def _open_database(settings: Settings) -> Database:
    url = settings.database_url
    try:
        # Migrations may take a while on a big table: their engine waits as long as needed.
        migrating = create_db_engine(url, pool_size=1, pool_recycle=settings.database.pool_recycle)
        try:
            upgrade_schema(migrating)
        finally:
            migrating.dispose()
        # Serving opens connections when it needs them; until then it holds none.
        engine = create_db_engine(
            url,
            pool_size=settings.database.pool_size,
            pool_recycle=settings.database.pool_recycle,
            echo=settings.database.echo,
            timeout_seconds=settings.database.timeout_seconds,
        )
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StartupError(f"cannot use the database at {_safe_url(url)}: {reason}") from exc
    except Exception as exc:  # a malformed URL or a missing driver, say
        raise StartupError(f"cannot use the database at {_safe_url(url)}: {exc}") from exc
    return Database(engine)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application, ready to serve; StartupError says in one line why it cannot be."""
    try:
        settings = settings or load_settings()
    except ConfigError as exc:
        raise StartupError(str(exc)) from exc
    setup_logging(
        log_dir=settings.path(settings.app.log_dir),
        level=settings.app.log_level,
        backup_days=settings.app.log_backup_days,
        max_bytes=settings.app.log_max_bytes,
    )
    limit_malloc_arenas(settings.app.malloc_arena_max)
    set_decode_memory(settings.app.decode_memory_mb)
    try:
        model_class(settings.inference.default_model)
    except AppError as exc:
        raise StartupError(f"[inference] DEFAULT_MODEL: {exc.detail}") from exc
    database = _open_database(settings)
    services = Services.build(settings, database)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await services.start()
        except BaseException as exc:
            await services.stop()  # whatever had started
            if isinstance(exc, ModelUnavailableError):
                raise StartupError(f"cannot start: {exc.detail}") from exc
            raise
        logger.info("serving with database %s", _safe_url(settings.database_url))
        yield
        await services.stop()

    app = FastAPI(
        title="Image Inference API",
        description=API_DESCRIPTION,
        version="0.1.0",
        debug=settings.app.debug,
        lifespan=lifespan,
    )
    app.state.services = services

    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        upload_paths={image_router.UPLOAD_PATH},
        max_upload_size=settings.app.max_upload_size,
        max_body_size=settings.app.max_body_size,
    )
    app.add_middleware(RequestLogMiddleware)
    # Outermost, so that even the 500 the request log answers carries the headers.
    app.add_middleware(SecurityHeadersMiddleware)
    for module in (system_router, user_router, inference_router, image_router, websocket_router):
        app.include_router(module.router)
    return app
