"""Builds the FastAPI application: settings, logging, database, storage, models, routes."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from app.config import ConfigError, Settings, load_settings
from app.database.engine import Database, create_db_engine
from app.database.migrate import upgrade_schema
from app.errors import install_error_handlers
from app.middleware import BodySizeLimitMiddleware, RequestLogMiddleware
from app.models.model_interface import model_class
from app.routers import (
    image_router,
    inference_router,
    system_router,
    user_router,
    websocket_router,
)
from app.services.input_cache import InputCache
from app.services.login_limiter import LoginLimiter
from app.services.model_pool import ModelPool
from app.services.notifier import TaskNotifier
from app.services.security import TokenService, resolve_secret_key
from app.services.storage import ImageStore
from app.services.task_runner import TaskRunner
from app.utils.exceptions import AppError, StartupError
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
        engine = create_db_engine(
            url,
            pool_size=settings.database.pool_size,
            pool_recycle=settings.database.pool_recycle,
            echo=settings.database.echo,
        )
        upgrade_schema(engine)
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


def _preload(pool: ModelPool, name: str) -> None:
    try:
        pool.runner(name)
    except Exception as exc:
        pool.close()
        raise StartupError(f"cannot load model '{name}': {exc}") from exc


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
    )
    limit_malloc_arenas(settings.app.malloc_arena_max)
    try:
        model_class(settings.inference.default_model)
    except AppError as exc:
        raise StartupError(f"[inference] DEFAULT_MODEL: {exc.detail}") from exc
    database = _open_database(settings)
    secret_key = resolve_secret_key(settings.app.secret_key, settings.path(settings.app.data_dir))
    model_pool = ModelPool(settings)
    store = ImageStore(settings.path(settings.app.upload_dir))
    notifier = TaskNotifier()
    input_cache = InputCache(enabled=settings.inference.cache_inputs)
    task_runner = TaskRunner(
        database=database,
        store=store,
        cache=input_cache,
        pool=model_pool,
        notifier=notifier,
        settings=settings.inference,
    )

    if settings.inference.preload:
        _preload(model_pool, settings.inference.default_model)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        notifier.bind(asyncio.get_running_loop())
        task_runner.recover()
        logger.info("serving with database %s", _safe_url(settings.database_url))
        yield
        task_runner.shutdown()
        model_pool.close()
        database.dispose()

    app = FastAPI(
        title="Image Inference API",
        description=API_DESCRIPTION,
        version="0.1.0",
        debug=settings.app.debug,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.store = store
    app.state.input_cache = input_cache
    app.state.model_pool = model_pool
    app.state.notifier = notifier
    app.state.task_runner = task_runner
    app.state.tokens = TokenService(
        secret_key, timedelta(minutes=settings.app.access_token_expire_minutes)
    )
    app.state.login_limiter = LoginLimiter(
        max_attempts=settings.app.login_max_attempts,
        window_seconds=settings.app.login_window_seconds,
    )

    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        upload_paths={image_router.UPLOAD_PATH},
        max_upload_size=settings.app.max_upload_size,
    )
    app.add_middleware(RequestLogMiddleware)
    for module in (system_router, user_router, inference_router, image_router, websocket_router):
        app.include_router(module.router)
    return app
