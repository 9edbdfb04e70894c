"""Runs accepted tasks in a few threads that feed the same model batchers as sync requests.

A task is a database row before it is work: the row moves pending -> processing ->
completed | failed, each move committed and then pushed to the owner's WebSockets. Tasks
still unfinished at start-up (a crash, a restart) are queued again.
"""

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import InferenceSettings
from app.database.engine import Database
from app.database.tables import (
    UNFINISHED_STATUSES,
    Image,
    InferenceResult,
    InferenceTask,
    TaskStatus,
)
from app.schemas.task import result_url
from app.services.batch_runner import BatchRunner
from app.services.inference import classify_file, new_result
from app.services.input_cache import InputCache
from app.services.model_pool import ModelPool
from app.services.notifier import TaskNotifier
from app.services.storage import ImageStore
from app.utils.exceptions import AppError, ServiceBusyError

logger = logging.getLogger(__name__)

# How long a task waits before offering itself again to a model queue that is full.
BUSY_RETRY_SECONDS = 0.05


def task_update(task: InferenceTask, *, error: str | None = None) -> dict[str, Any]:
    """The WebSocket message announcing a task's current state."""
    return {
        "type": "task_update",
        "task_id": task.id,
        "status": task.status,
        "image_id": task.image_id,
        "model_name": task.model_name,
        "result_id": task.result_id,
        "result_url": result_url(task.result_id),
        "error": error or task.error,
        "timestamp": datetime.now(UTC).isoformat(),
    }


class TaskRunner:
    def __init__(
        self,
        *,
        database: Database,
        store: ImageStore,
        cache: InputCache,
        pool: ModelPool,
        notifier: TaskNotifier,
        settings: InferenceSettings,
    ) -> None:
        self.database = database
        self.store = store
        self.cache = cache
        self.pool = pool
        self.notifier = notifier
        self.settings = settings
        self._executor = ThreadPoolExecutor(settings.task_workers, thread_name_prefix="task")
        self._pending = 0
        self._lock = threading.Lock()

    @staticmethod
    def new_task_id() -> str:
        return str(uuid.uuid4())

    def reserve(self) -> None:
        """Count one more unfinished task, or refuse with 503 when there are too many."""
        with self._lock:
            if self._pending >= self.settings.max_pending_tasks:
                raise ServiceBusyError(
                    f"{self._pending} tasks are waiting; try again shortly", retry_after=5
                )
            self._pending += 1

    def release(self) -> None:
        with self._lock:
            self._pending -= 1

    def announce(self, task: InferenceTask) -> None:
        self.notifier.publish(task.owner_id, task_update(task))

    def enqueue(self, task: "TaskRef") -> None:
        """Run a reserved, stored task in the background."""
        self._executor.submit(self._run_and_release, task)

    def recover(self) -> int:
        """Queue every task a previous process accepted but did not finish."""
        with self.database.read_session() as session:
            unfinished = [
                TaskRef.of(task)
                for task in session.scalars(
                    select(InferenceTask)
                    .where(InferenceTask.status.in_(UNFINISHED_STATUSES))
                    .order_by(InferenceTask.created_at)
                )
            ]
        with self._lock:
            self._pending += len(unfinished)
        for task in unfinished:
            self.enqueue(task)
        if unfinished:
            logger.info("recovered %d unfinished tasks", len(unfinished))
        return len(unfinished)

    def shutdown(self) -> None:
        # Unstarted tasks stay pending in the database and run after the next start.
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run_and_release(self, task: "TaskRef") -> None:
        try:
            self._run(task)
        except Exception:
            logger.exception("task %s crashed", task.id)
        finally:
            self.release()

    def _run(self, task: "TaskRef") -> None:
        try:
            # Loaded (the first time) outside any transaction: loading can take a while.
            runner = self.pool.runner(task.model_name)
        except Exception as exc:
            logger.exception("task %s: model %s cannot be used", task.id, task.model_name)
            self._finish(task, error=f"model '{task.model_name}' cannot be used: {exc}")
            return
        path = self._start(task)
        if path is None:
            return
        began = time.perf_counter()
        try:
            outcome = self._classify(runner, path)
        except AppError as exc:
            self._finish(task, error=exc.detail)
            return
        except Exception as exc:
            logger.exception("task %s failed", task.id)
            self._finish(task, error=f"inference failed: {type(exc).__name__}")
            return
        result = new_result(
            owner_id=task.owner_id,
            image_id=task.image_id,
            runner=runner,
            outcome=outcome,
            elapsed_ms=(time.perf_counter() - began) * 1000,
        )
        self._finish(task, result=result)

    def _start(self, ref: "TaskRef") -> Path | None:
        """Move the task to processing; None when there is nothing (left) to do."""
        with self.database.session() as session:
            task = session.get(InferenceTask, ref.id)
            image = session.get(Image, ref.image_id)
            if task is None or image is None:
                session.rollback()
                self._announce_gone(ref)
                return None
            if task.status not in UNFINISHED_STATUSES:
                return None  # already finished, by an earlier run
            if task.attempts >= self.settings.max_task_attempts:
                self._fail(session, task, f"gave up after {task.attempts} attempts")
                return None
            task.status = TaskStatus.PROCESSING
            task.attempts += 1
            task.started_at = datetime.now(UTC)
            session.commit()
            self.notifier.publish(task.owner_id, task_update(task))
            return self.store.path(image.stored_path)

    def _classify(self, runner: BatchRunner, path: Path) -> dict[str, Any]:
        deadline = time.monotonic() + runner.settings.timeout_seconds
        while True:
            try:
                return classify_file(runner, path, self.cache)
            except ServiceBusyError:
                # Sync requests filled the model's queue; a task can wait its turn.
                if time.monotonic() > deadline:
                    raise
                time.sleep(BUSY_RETRY_SECONDS)

    def _finish(
        self, ref: "TaskRef", *, result: InferenceResult | None = None, error: str = ""
    ) -> None:
        with self.database.session() as session:
            task = session.get(InferenceTask, ref.id)
            if task is not None and result is not None:
                session.add(result)
                try:
                    session.flush()
                except IntegrityError:
                    session.rollback()
                    task = None
            if task is None:
                # The image was deleted, and the task with it, while the model ran.
                self._announce_gone(ref)
                return
            if result is None:
                self._fail(session, task, error)
                return
            task.result_id = result.id
            task.status = TaskStatus.COMPLETED
            task.finished_at = datetime.now(UTC)
            session.commit()
            self.notifier.publish(task.owner_id, task_update(task))

    def _fail(self, session: Session, task: InferenceTask, error: str) -> None:
        task.status = TaskStatus.FAILED
        task.error = error
        task.finished_at = datetime.now(UTC)
        session.commit()
        self.notifier.publish(task.owner_id, task_update(task))

    def _announce_gone(self, ref: "TaskRef") -> None:
        gone = InferenceTask(
            id=ref.id,
            owner_id=ref.owner_id,
            image_id=ref.image_id,
            model_name=ref.model_name,
            status=TaskStatus.FAILED,
        )
        self.notifier.publish(ref.owner_id, task_update(gone, error="the image was deleted"))


@dataclass(frozen=True)
class TaskRef:
    """What a worker needs to know of a task before reading its row."""

    id: str
    owner_id: int
    image_id: int
    model_name: str

    @classmethod
    def of(cls, task: InferenceTask) -> "TaskRef":
        return cls(task.id, task.owner_id, task.image_id, task.model_name)
