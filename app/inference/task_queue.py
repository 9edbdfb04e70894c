"""The in-process task backend: accepted tasks wait here for one of a few worker coroutines.

Workers run on the event loop and spend their time awaiting the inference pipeline, whose
blocking steps run in threads; ``workers`` bounds how many tasks are in the pipeline at
once (a few more than a batch keeps batches full). Admission is bounded too: ``reserve``
refuses with 503 once ``max_pending`` tasks are accepted but unfinished, so a burst cannot
queue without limit. The queue knows which tasks it holds (queued or running), so that a
sweep can tell a task it holds from one that was lost. It lives in this process only: what it
holds when the process stops is still unfinished in the database and is queued again later.
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
        self._held: set[ItemT] = set()
        self._lock = threading.Lock()  # reserve runs in request threads
        self._queue: asyncio.Queue[ItemT | None] | None = None
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._accepting = False

    @property
    def pending(self) -> int:
        """Tasks accepted and not yet finished (queued or running)."""
        return len(self._held)

    def reserve(self, item: ItemT, *, force: bool = False) -> bool:
        """Count one more unfinished task, or refuse with 503 when there are too many.

        ``force`` admits it anyway: tasks accepted earlier are never refused. False when the
        task is held already (it must not run twice here).
        """
        if not self._accepting:
            raise ServiceBusyError("the service is starting or stopping; try again", retry_after=5)
        with self._lock:
            if item in self._held:
                return False
            if len(self._held) >= self.max_pending and not force:
                raise ServiceBusyError(
                    f"{len(self._held)} tasks are waiting; try again shortly", retry_after=5
                )
            self._held.add(item)
            return True

    def release(self, item: ItemT) -> None:
        """Uncount a task: finished, or not to be queued after all."""
        with self._lock:
            self._held.discard(item)

    async def put(self, item: ItemT) -> None:
        """Queue a reserved task; called on the event loop.

        A queue that has stopped meanwhile lets the reservation go: the task is still pending
        in the database and runs after the next start.
        """
        if self._queue is None or not self._accepting:
            logger.info("task %s stays pending until the next start", item)
            self.release(item)
            return
        self._queue.put_nowait(item)

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker_tasks = [
            asyncio.create_task(self._work(), name=f"task-worker-{n}") for n in range(self.workers)
        ]
        self._accepting = True

    async def stop(self) -> None:
        """Let running tasks finish (bounded); queued ones stay pending in the database."""
        self._accepting = False
        if self._queue is None:
            return
        while not self._queue.empty():
            if (item := self._queue.get_nowait()) is not None:
                self.release(item)
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
                self.release(item)
