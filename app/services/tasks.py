"""Accepting asynchronous inference tasks and reading their state."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database.tables import InferenceTask, TaskStatus, User
from app.models.model_interface import model_class
from app.schemas.task import TaskCreate
from app.services.images import get_image
from app.services.task_runner import TaskRunner
from app.utils.exceptions import ConflictError, NotFoundError


def create_task(
    *, session: Session, runner: TaskRunner, default_model: str, owner: User, task_in: TaskCreate
) -> InferenceTask:
    """Validate and store a pending task; the caller then hands its id to the runner."""
    model_name = task_in.model_name or default_model
    model_class(model_name)
    get_image(session=session, owner=owner, image_id=task_in.image_id)
    task_id = str(task_in.task_id) if task_in.task_id else None
    if task_id is not None and session.get(InferenceTask, task_id) is not None:
        raise ConflictError(f"task {task_id} already exists")
    runner.reserve()
    task = InferenceTask(
        id=task_id or runner.new_task_id(),
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
        runner.release()
        # Either the id was taken meanwhile, or the image was deleted meanwhile.
        get_image(session=session, owner=owner, image_id=task_in.image_id)
        raise ConflictError(f"task {task.id} already exists") from exc
    except BaseException:
        runner.release()
        raise
    runner.announce(task)
    return task


def get_task(*, session: Session, owner: User, task_id: str) -> InferenceTask:
    task = session.get(InferenceTask, task_id)
    if task is None or task.owner_id != owner.id:
        raise NotFoundError(f"task {task_id} not found")
    return task
