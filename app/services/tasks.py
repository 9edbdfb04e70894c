"""Asynchronous inference tasks: accepting them, running them, and reading their state.

A task is a database row before it is work. Its status moves
pending -> processing -> completed | failed; each move is committed, then pushed to the
owner's WebSockets. Each database step rides out a short outage (retries with backoff); a task
a longer outage leaves behind, like one a crash or restart left unfinished, is queued again by
the sweep, at start-up and then periodically.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from fastapi import BackgroundTasks
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from app.config import InferenceSettings
from app.database.engine import Database
from app.database.tables import UNFINISHED_STATUSES, Image, InferenceTask, TaskStatus, User
from app.inference.pipeline import InferencePipeline, Outcome
from app.inference.task_queue import TaskQueue
from app.models.model_interface import model_class
from app.schemas.task import TaskCreate, result_url
from app.services.images import get_image
from app.services.inference import new_result
from app.services.notifier import TaskNotifier
from app.utils.exceptions import AppError, ConflictError, NotFoundError

logger = logging.getLogger(__name__)


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


# A connection lost or refused, a pool or a lock that timed out: worth trying again shortly.
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError)
# How long one step of a task retries (backoff from 0.2 s, doubling to 5 s) before it leaves
# the task to the sweep.
STEP_RETRY_SECONDS = 30.0

T = TypeVar("T")


class _NothingToDo(Exception):
    """The task is finished, gone, or out of attempts: its row already says so."""


class _Deferred(Exception):
    """The database stayed unavailable; the task is left to the sweep, its row unchanged."""


class TaskService:
    def __init__(
        self,
        *,
        database: Database,
        pipeline: InferencePipeline,
        notifier: TaskNotifier,
        settings: InferenceSettings,
    ) -> None:
        self.database = database
        self.pipeline = pipeline
        self.notifier = notifier
        self.settings = settings
        self.queue: TaskQueue[TaskRef] = TaskQueue(
            workers=settings.task_workers, max_pending=settings.max_pending_tasks, handler=self.run
        )
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the workers, queue what earlier processes left unfinished, sweep from then on."""
        await self.queue.start()
        recovered = await self.sweep()
        if recovered:
            logger.info("recovered %d unfinished tasks", recovered)
        self._sweeper = asyncio.create_task(self._sweep_periodically(), name="task-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self.queue.stop()

    def submit(
        self, *, session: Session, owner: User, task_in: TaskCreate, background: BackgroundTasks
    ) -> InferenceTask:
        """Validate and store a pending task, and queue it once the answer has been sent.

        Queuing waits for FastAPI's BackgroundTasks, that is until the 202 is out: the client
        knows the task id before the task can start (only its `pending` update comes first).
        """
        model_name = task_in.model_name or self.settings.default_model
        model_class(model_name)
        get_image(session=session, owner_id=owner.id, image_id=task_in.image_id)
        task_id = str(task_in.task_id) if task_in.task_id else str(uuid.uuid4())
        # Ids are the owner's own: only the owner's earlier task with this id is a conflict.
        earlier = session.get(InferenceTask, (task_id, owner.id)) if task_in.task_id else None
        if earlier is not None:
            raise ConflictError(f"task {task_id} already exists")
        ref = TaskRef(task_id, owner.id, task_in.image_id, model_name)
        self.queue.reserve(ref)
        task = InferenceTask(
            id=task_id,
            owner_id=owner.id,
            image_id=task_in.image_id,
            model_name=model_name,
            status=TaskStatus.PENDING,
            attempts=0,
        )
        session.add(task)
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            self.queue.release(ref)
            # Either the id was taken meanwhile, or the image was deleted meanwhile.
            get_image(session=session, owner_id=owner.id, image_id=task_in.image_id)
            raise ConflictError(f"task {task.id} already exists") from exc
        except BaseException:
            self.queue.release(ref)
            raise
        self.notifier.publish(task.owner_id, task_update(task))
        background.add_task(self.queue.put, ref)
        return task

    async def sweep(self, *, idle_for: float = 0.0) -> int:
        """Queue the unfinished tasks this process does not hold; how many were queued.

        At start-up (``idle_for`` 0) these are all that an earlier process accepted and did
        not finish. Later, only those that have not moved for ``idle_for`` seconds: left behind
        by a database outage, not merely waiting their turn (in this process, or in another
        serving the same database meanwhile).
        """
        queued = 0
        for ref in await run_in_threadpool(self._unfinished, idle_for):
            if self.queue.reserve(ref, force=True):
                await self.queue.put(ref)
                queued += 1
        return queued

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                queued = await self.sweep(idle_for=self.settings.stuck_after_seconds)
            except TRANSIENT_DATABASE_ERRORS as exc:
                logger.warning("task sweep skipped: %s", _first_line(exc))
                continue
            if queued:
                logger.warning("task sweep queued %d tasks left unfinished", queued)

    def _unfinished(self, idle_for: float) -> list[TaskRef]:
        last_moved = func.coalesce(InferenceTask.started_at, InferenceTask.created_at)
        before = datetime.now(UTC) - timedelta(seconds=idle_for)
        with self.database.read_session() as session:
            return [
                TaskRef.of(task)
                for task in session.scalars(
                    select(InferenceTask)
                    .where(InferenceTask.status.in_(UNFINISHED_STATUSES), last_moved <= before)
                    .order_by(InferenceTask.created_at)
                )
            ]

    async def run(self, ref: TaskRef) -> None:
        """Run one queued task through the inference pipeline; its row records the outcome."""
        try:
            try:
                await self.pipeline.run(_TaskJob(self, ref), wait_for_room=True)
            except (_NothingToDo, _Deferred):
                raise
            except AppError as exc:
                await run_in_threadpool(self.retrying, self._fail, ref, exc.detail)
            except Exception as exc:
                logger.exception("task %s failed", ref.id)
                error = f"inference failed: {type(exc).__name__}"
                await run_in_threadpool(self.retrying, self._fail, ref, error)
        except _NothingToDo:
            return
        except _Deferred:
            logger.warning("task %s: the database is unavailable; the sweep runs it later", ref.id)

    def retrying(self, step: Callable[..., T], *args: Any) -> T:
        """Run a database step, riding out transient errors for a while; _Deferred after that.

        Blocking: called in a worker thread.
        """
        delay = 0.2
        deadline = time.monotonic() + STEP_RETRY_SECONDS
        while True:
            try:
                return step(*args)
            except TRANSIENT_DATABASE_ERRORS as exc:
                if time.monotonic() + delay > deadline:
                    raise _Deferred from exc
                logger.warning("task step failed (%s); again in %.1f s", _first_line(exc), delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def mark_processing(self, ref: TaskRef) -> str:
        """Move the task to processing and return its image's stored path."""
        with self.database.session() as session:
            task = session.get(InferenceTask, (ref.id, ref.owner_id))
            image = session.get(Image, ref.image_id)
            if task is None or image is None:
                session.rollback()
                self._announce_gone(ref)
                raise _NothingToDo
            if task.status not in UNFINISHED_STATUSES:
                # Finished by an earlier run, whose push may have been lost with its answer.
                self.notifier.publish(task.owner_id, task_update(task))
                raise _NothingToDo
            if task.attempts >= self.settings.max_task_attempts:
                self._mark_failed(session, task, f"gave up after {task.attempts} attempts")
                raise _NothingToDo
            task.status = TaskStatus.PROCESSING
            task.attempts += 1
            task.started_at = datetime.now(UTC)
            session.commit()
            self.notifier.publish(task.owner_id, task_update(task))
            return image.stored_path

    def store_outcome(self, ref: TaskRef, outcome: Outcome) -> None:
        """Store the result and mark the task completed, in one transaction."""
        with self.database.session() as session:
            task = session.get(InferenceTask, (ref.id, ref.owner_id))
            if task is not None and task.status not in UNFINISHED_STATUSES:
                # Finished meanwhile: by another run, or by this one's own commit whose answer
                # the database lost before a retry. One result is enough; the push is owed.
                self.notifier.publish(task.owner_id, task_update(task))
                raise _NothingToDo
            if task is not None:
                result = new_result(owner_id=ref.owner_id, image_id=ref.image_id, outcome=outcome)
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
            task.result_id = result.id
            task.status = TaskStatus.COMPLETED
            task.finished_at = datetime.now(UTC)
            session.commit()
            self.notifier.publish(task.owner_id, task_update(task))

    def _fail(self, ref: TaskRef, error: str) -> None:
        with self.database.session() as session:
            task = session.get(InferenceTask, (ref.id, ref.owner_id))
            if task is None:
                self._announce_gone(ref)
                return
            self._mark_failed(session, task, error)

    def _mark_failed(self, session: Session, task: InferenceTask, error: str) -> None:
        task.status = TaskStatus.FAILED
        task.error = error
        task.finished_at = datetime.now(UTC)
        session.commit()
        self.notifier.publish(task.owner_id, task_update(task))

    def _announce_gone(self, ref: TaskRef) -> None:
        gone = InferenceTask(
            id=ref.id,
            owner_id=ref.owner_id,
            image_id=ref.image_id,
            model_name=ref.model_name,
            status=TaskStatus.FAILED,
        )
        self.notifier.publish(ref.owner_id, task_update(gone, error="the image was deleted"))


@dataclass(frozen=True)
class _TaskJob:
    """A task as the pipeline sees it: its row goes to processing, then gets the result."""

    tasks: TaskService
    ref: TaskRef

    @property
    def model_name(self) -> str:
        return self.ref.model_name

    def locate(self) -> str:
        return self.tasks.retrying(self.tasks.mark_processing, self.ref)

    def store(self, outcome: Outcome) -> None:
        # The outcome stays in memory while the database is away: no inference is redone.
        self.tasks.retrying(self.tasks.store_outcome, self.ref, outcome)


def get_task(*, session: Session, owner: User, task_id: str) -> InferenceTask:
    task = session.get(InferenceTask, (task_id, owner.id))
    if task is None:
        raise NotFoundError(f"task {task_id} not found")
    return task


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
