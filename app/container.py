"""The application's long-lived objects, built once per app and reached through dependencies.

Building them is cheap and starts nothing: threads, models and task workers start in
``start`` (called by the app's lifespan) and stop in ``stop``, so an app that is built but
never served holds no thread and no model.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from fastapi.concurrency import run_in_threadpool

from app.config import Settings
from app.database.engine import Database
from app.inference.kept_inputs import KeptInputs
from app.inference.loaded_models import LoadedModels
from app.inference.pipeline import InferencePipeline
from app.services.login_limiter import LoginLimiter
from app.services.notifier import TaskNotifier
from app.services.security import TokenService, resolve_secret_key
from app.services.storage import ImageStore
from app.services.tasks import TaskService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    database: Database
    store: ImageStore
    models: LoadedModels
    pipeline: InferencePipeline
    tasks: TaskService
    notifier: TaskNotifier
    tokens: TokenService
    login_limiter: LoginLimiter

    @classmethod
    def build(cls, settings: Settings, database: Database) -> "Services":
        store = ImageStore(settings.path(settings.app.upload_dir))
        models = LoadedModels(settings)
        pipeline = InferencePipeline(
            models, KeptInputs(store, enabled=settings.inference.cache_inputs)
        )
        notifier = TaskNotifier()
        secret_key = resolve_secret_key(
            settings.app.secret_key, settings.path(settings.app.data_dir)
        )
        return cls(
            settings=settings,
            database=database,
            store=store,
            models=models,
            pipeline=pipeline,
            tasks=TaskService(
                database=database,
                pipeline=pipeline,
                notifier=notifier,
                settings=settings.inference,
            ),
            notifier=notifier,
            tokens=TokenService(
                secret_key, timedelta(minutes=settings.app.access_token_expire_minutes)
            ),
            login_limiter=LoginLimiter(
                max_attempts=settings.app.login_max_attempts,
                max_attempts_per_client=settings.app.login_max_attempts_per_client,
                window_seconds=settings.app.login_window_seconds,
            ),
        )

    async def start(self) -> None:
        """Load the default model (unless it loads on first use), start the task workers."""
        self.notifier.bind(asyncio.get_running_loop())
        if self.settings.inference.preload:
            await run_in_threadpool(self.models.batcher, self.settings.inference.default_model)
        await self.tasks.start()

    async def stop(self) -> None:
        await self.tasks.stop()
        await run_in_threadpool(self.models.close)
        self.database.dispose()
