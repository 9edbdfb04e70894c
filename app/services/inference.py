"""Running a model on a stored image and keeping the result."""

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request

from app.database.tables import InferenceResult, User
from app.models.model_interface import ModelInterface
from app.services.batch_runner import BatchRunner
from app.services.images import get_image
from app.services.input_cache import InputCache
from app.services.model_pool import ModelPool
from app.services.storage import ImageStore
from app.utils.exceptions import ClientGoneError, InferenceTimeoutError, NotFoundError


@dataclass(frozen=True)
class PreparedInput:
    """A model-ready sample of one stored image, and where its result goes."""

    runner: BatchRunner
    owner_id: int
    image_id: int
    sample: np.ndarray
    started: float


def preprocess_file(model: ModelInterface, path: Path, cache: InputCache) -> np.ndarray:
    try:
        return cache.sample(model, path)
    except FileNotFoundError as exc:
        raise NotFoundError("the image's file is missing from storage") from exc


def classify_file(runner: BatchRunner, path: Path, cache: InputCache) -> dict[str, Any]:
    """Decode and preprocess in this thread, predict in the model's batch, postprocess here."""
    model = runner.model
    return model.postprocess(runner.infer(preprocess_file(model, path, cache)))


def prepare_input(
    *,
    session: Session,
    store: ImageStore,
    cache: InputCache,
    pool: ModelPool,
    owner: User,
    image_id: int,
    model_name: str | None,
) -> PreparedInput:
    """Find the caller's image and turn it into the model's input, in the calling thread."""
    runner = pool.runner(model_name)
    image = get_image(session=session, owner=owner, image_id=image_id)
    path = store.path(image.stored_path)
    # End the read transaction: nothing should hold the database while the model runs.
    session.commit()
    started = time.perf_counter()
    sample = preprocess_file(runner.model, path, cache)
    return PreparedInput(runner, owner.id, image_id, sample, started)


async def predict_while_connected(prepared: PreparedInput, request: Request) -> np.ndarray:
    """Wait for the batch that runs this sample; drop it if the client leaves or time runs out."""
    runner = prepared.runner
    future = runner.submit(prepared.sample)
    output = asyncio.wrap_future(future)
    client_gone = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait(
            {output, client_gone},
            timeout=runner.settings.timeout_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        client_gone.cancel()
    if output in done:
        return output.result()
    future.cancel()  # still queued: the worker skips it
    if client_gone in done:
        raise ClientGoneError("the client closed the connection before the answer was ready")
    raise InferenceTimeoutError(
        f"model '{runner.model.name}' did not answer within {runner.settings.timeout_seconds} s"
    )


async def _wait_for_disconnect(request: Request) -> None:
    # The body is already read, so the next message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


def save_result(
    *, session: Session, prepared: PreparedInput, output: np.ndarray
) -> InferenceResult:
    runner = prepared.runner
    result = new_result(
        owner_id=prepared.owner_id,
        image_id=prepared.image_id,
        runner=runner,
        outcome=runner.model.postprocess(output),
        elapsed_ms=(time.perf_counter() - prepared.started) * 1000,
    )
    session.add(result)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise NotFoundError(f"image {prepared.image_id} was deleted while the model ran") from exc
    return result


def new_result(
    *, owner_id: int, image_id: int, runner: BatchRunner, outcome: dict[str, Any], elapsed_ms: float
) -> InferenceResult:
    return InferenceResult(
        image_id=image_id,
        owner_id=owner_id,
        model_name=runner.model.name,
        model_version=runner.model.version,
        label=outcome["label"],
        confidence=outcome["confidence"],
        predictions=outcome["predictions"],
        processing_time_ms=round(elapsed_ms, 3),
    )


def get_result(*, session: Session, owner: User, result_id: int) -> InferenceResult:
    result = session.get(InferenceResult, result_id)
    if result is None or result.owner_id != owner.id:
        raise NotFoundError(f"inference result {result_id} not found")
    return result
