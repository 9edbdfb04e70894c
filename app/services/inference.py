"""Running a model on a stored image and keeping the result."""

import time
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database.tables import InferenceResult, User
from app.services.batch_runner import BatchRunner
from app.services.images import get_image
from app.services.model_pool import ModelPool
from app.services.storage import ImageStore
from app.utils.exceptions import NotFoundError
from app.utils.image_utils import open_rgb


def classify_file(runner: BatchRunner, path: Path) -> dict[str, Any]:
    """Decode and preprocess in this thread, predict in the model's batch, postprocess here."""
    model = runner.model
    try:
        image = open_rgb(path, draft_size=model.draft_size)
    except FileNotFoundError as exc:
        raise NotFoundError("the image's file is missing from storage") from exc
    output = runner.infer(model.preprocess(image))
    return model.postprocess(output)


def run_inference(
    *,
    session: Session,
    store: ImageStore,
    pool: ModelPool,
    owner: User,
    image_id: int,
    model_name: str | None,
) -> InferenceResult:
    runner = pool.runner(model_name)
    image = get_image(session=session, owner=owner, image_id=image_id)
    path = store.path(image.stored_path)
    # End the read transaction: nothing should hold the database while the model runs.
    session.commit()

    started = time.perf_counter()
    outcome = classify_file(runner, path)
    result = new_result(
        owner_id=owner.id,
        image_id=image_id,
        runner=runner,
        outcome=outcome,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
    session.add(result)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise NotFoundError(f"image {image_id} was deleted while the model ran") from exc
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
