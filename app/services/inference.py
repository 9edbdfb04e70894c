"""Running a model on one of the caller's stored images, and reading stored results."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database.engine import Database
from app.database.tables import Image, InferenceResult, User
from app.inference.pipeline import InferencePipeline, Outcome
from app.services.images import get_image
from app.utils.exceptions import NotFoundError


async def classify_image(
    *,
    database: Database,
    pipeline: InferencePipeline,
    owner: User,
    image_id: int,
    model_name: str | None,
    abandoned: Callable[[], Awaitable[None]],
) -> InferenceResult:
    """Classify a stored image now and keep the result; dropped if ``abandoned()`` completes."""
    job = _ImageJob(database, owner.id, image_id, model_name)
    return await pipeline.run(job, abandoned=abandoned)


@dataclass(frozen=True)
class _ImageJob:
    database: Database
    owner_id: int
    image_id: int
    model_name: str | None

    def locate(self) -> str:
        with self.database.read_session() as session:
            return get_image(
                session=session, owner_id=self.owner_id, image_id=self.image_id
            ).stored_path

    def store(self, outcome: Outcome) -> InferenceResult:
        with self.database.session() as session:
            # The image must still be the caller's now, not only when the model started.
            image = session.get(Image, self.image_id)
            if image is None or image.owner_id != self.owner_id:
                raise NotFoundError(f"image {self.image_id} was deleted while the model ran")
            result = new_result(owner_id=self.owner_id, image_id=self.image_id, outcome=outcome)
            session.add(result)
            try:
                session.commit()
            except IntegrityError as exc:
                raise NotFoundError(
                    f"image {self.image_id} was deleted while the model ran"
                ) from exc
            return result


def new_result(*, owner_id: int, image_id: int, outcome: Outcome) -> InferenceResult:
    return InferenceResult(
        image_id=image_id,
        owner_id=owner_id,
        model_name=outcome.model.name,
        model_version=outcome.model.version,
        label=outcome.prediction["label"],
        confidence=outcome.prediction["confidence"],
        predictions=outcome.prediction["predictions"],
        processing_time_ms=round(outcome.elapsed_ms, 3),
    )


def get_result(*, session: Session, owner: User, result_id: int) -> InferenceResult:
    result = session.get(InferenceResult, result_id)
    if result is None or result.owner_id != owner.id:
        raise NotFoundError(f"inference result {result_id} not found")
    return result
