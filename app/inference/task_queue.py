"""The in-process task backend: accepted tasks wait here for one of a few worker coroutines.

Workers run on the event loop and spend their time awaiting the inference pipeline, whose
blocking steps run in threads; ``workers`` bounds how many tasks are in the pipeline at
once (a few more than a batch keeps batches full). Admission is bounded too: ``reserve``
refuses with 503 once ``max_pending`` tasks are accepted but unfinished, so a burst cannot
queue without limit. The queue lives in this process only: what it holds when the process
stops is still ``pending`` in the database and is queued again at the next start.
"""

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from app.utils.exceptions import ServiceBusyError

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")

# How long stopping waits for tasks already in the pipeline to finish.
STOP_GRACE_SECONDS = 10.0


class TaskQueue(Generic[ItemT]):
    def __init__(
        self, *, workers: int, max_pending: int, handler: Callable[[ItemT], Awaitable[None]]
    ) -> None:
        self.workers = workers
        self.max_pending = max_pending
        self._handler = handler
        self._pending = 0
        self._lock = threading.Lock()  # reserve runs in request threads
        self._queue: asyncio.Queue[ItemT | None] | None = None
        self._worker_tasks: list[asyncio.Task[None]] = []

    @property
    def pending(self) -> int:
        """Tasks accepted and not yet finished (queued or running)."""
        return self._pending

    def reserve(self, *, force: bool = False) -> None:
        """Count one more unfinished task, or refuse with 503 when there are too many.

        ``force`` admits it anyway: tasks an earlier process accepted are never refused.
        """
        with self._lock:
            if self._pending >= self.max_pending and not force:
                raise ServiceBusyError(
                    f"{self._pending} tasks are waiting; try again shortly", retry_after=5
                )
            self._pending += 1

    def release(self) -> None:
        """Uncount a reserved task that will not be put in the queue after all."""
        with self._lock:
            self._pending -= 1

    async def put(self, item: ItemT) -> None:
        """Queue a reserved task; called on the event loop."""
        if self._queue is None:
            raise RuntimeError("the task queue is not started")
        self._queue.put_nowait(item)

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker_tasks = [
            asyncio.create_task(self._work(), name=f"task-worker-{n}") for n in range(self.workers)
        ]

    async def stop(self) -> None:
        """Let running tasks finish (bounded); queued ones stay pending in the database."""
        if self._queue is None:
            return
        while not self._queue.empty():
            self._queue.get_nowait()
            self.release()
        for _ in self._worker_tasks:
            self._queue.put_nowait(None)
        _, unfinished = await asyncio.wait(self._worker_tasks, timeout=STOP_GRACE_SECONDS)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        self._queue = None
        self._worker_tasks = []

    async def _work(self) -> None:
        assert self._queue is not None
        while (item := await self._queue.get()) is not None:
            try:
                await self._handler(item)
            except Exception:
                logger.exception("task %s crashed", item)
            finally:
                self.release()
