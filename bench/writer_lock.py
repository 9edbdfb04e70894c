"""What the in-process SQLite writer queue is worth: the service's write transactions, with it
and without it (SQLite's busy handler alone), in the same run.

    .venv/bin/python bench/writer_lock.py [--seconds 10]

Each of N threads repeats the two write transactions a task makes (pending -> processing; then
the result row and completed), with a little CPU work between them as the pipeline has, against
a fresh SQLite database migrated by the app. Printed: transactions per second and the latency
of one transaction (p50, p99, max), for 8 and 32 threads.
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.database.engine import Database, create_db_engine  # noqa: E402
from app.database.migrate import upgrade_schema  # noqa: E402
from app.database.tables import (  # noqa: E402
    Image,
    InferenceResult,
    InferenceTask,
    TaskStatus,
    User,
)


def prepare(database: Database, tasks: int) -> list[str]:
    with database.session() as session:
        user = User(username="bench", email="bench@example.com", hashed_password="x")
        session.add(user)
        session.flush()
        image = Image(
            owner_id=user.id,
            filename="a.jpg",
            stored_path=f"user_{user.id}/a.jpg",
            content_type="image/jpeg",
            format="JPEG",
            width=1,
            height=1,
            size=1,
            sha256="0" * 64,
        )
        session.add(image)
        session.flush()
        ids = [str(uuid.uuid4()) for _ in range(tasks)]
        session.add_all(
            InferenceTask(id=i, owner_id=user.id, image_id=image.id, model_name="m") for i in ids
        )
        session.commit()
    return ids


def run(queue_writers: bool, threads: int, seconds: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="writer-lock-"))
    engine = create_db_engine(
        f"sqlite:///{folder / 'bench.db'}",
        pool_size=threads,
        pool_recycle=3600,
        queue_sqlite_writers=queue_writers,
    )
    upgrade_schema(engine)
    database = Database(engine)
    task_ids = prepare(database, threads * 4000)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds
    cpu_work = np.random.default_rng(0).random((64, 64))

    def worker(n: int) -> None:
        mine = iter(task_ids[n::threads])
        while time.perf_counter() < stop:
            task_id = next(mine)
            started = time.perf_counter()
            with database.session() as session:
                task = session.get(InferenceTask, task_id)
                assert task is not None
                task.status = TaskStatus.PROCESSING
                task.started_at = datetime.now(UTC)
                session.commit()
            latencies[n].append(time.perf_counter() - started)
            cpu_work @ cpu_work  # the pipeline's work between the two transactions
            started = time.perf_counter()
            with database.session() as session:
                task = session.get(InferenceTask, task_id)
                assert task is not None
                result = InferenceResult(
                    image_id=task.image_id,
                    owner_id=task.owner_id,
                    model_name="m",
                    model_version="1",
                    label="x",
                    confidence=1.0,
                    predictions=[],
                    processing_time_ms=1.0,
                )
                session.add(result)
                session.flush()
                task.result_id = result.id
                task.status = TaskStatus.COMPLETED
                session.commit()
            latencies[n].append(time.perf_counter() - started)

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    database.dispose()
    all_ms = sorted(x * 1000 for per in latencies for x in per)
    return {
        "writer_queue": queue_writers,
        "threads": threads,
        "tx_s": round(len(all_ms) / elapsed, 1),
        "p50_ms": round(statistics.median(all_ms), 2),
        "p99_ms": round(all_ms[int(len(all_ms) * 0.99)], 2),
        "max_ms": round(all_ms[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    for threads in (8, 32):
        for queue_writers in (True, False, True, False):
            print(json.dumps(run(queue_writers, threads, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
