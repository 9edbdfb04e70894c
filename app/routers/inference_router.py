"""Run a model on one of your images, now or as a background task, and read the results."""

from functools import partial
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Request, Response

from app.database.tables import InferenceResult, InferenceTask
from app.dependencies import (
    CurrentUser,
    ReadSession,
    RowId,
    ServicesDep,
    WriteSession,
    client_disconnected,
)
from app.schemas.error import error_responses
from app.schemas.inference import InferenceRequest, InferenceResultOut
from app.schemas.task import TaskAccepted, TaskCreate, TaskOut, task_url
from app.services import inference, tasks

router = APIRouter(
    prefix="/images/inference", tags=["inference"], responses=error_responses(401, 404, 422, 503)
)


@router.post("", response_model=InferenceResultOut, responses=error_responses(400, 499, 504))
async def infer(
    body: InferenceRequest, request: Request, user: CurrentUser, services: ServicesDep
) -> InferenceResult:
    return await inference.classify_image(
        database=services.database,
        pipeline=services.pipeline,
        owner=user,
        image_id=body.image_id,
        model_name=body.model_name,
        abandoned=partial(client_disconnected, request),
    )


@router.post(
    "/async", status_code=202, response_model=TaskAccepted, responses=error_responses(400, 409)
)
def submit_task(
    body: TaskCreate,
    background: BackgroundTasks,
    response: Response,
    user: CurrentUser,
    session: WriteSession,
    services: ServicesDep,
) -> InferenceTask:
    task = services.tasks.submit(session=session, owner=user, task_in=body, background=background)
    response.headers["Location"] = task_url(task.id)
    return task


@router.get("/tasks/{task_id}", response_model=TaskOut)
def read_task(task_id: UUID, user: CurrentUser, session: ReadSession) -> InferenceTask:
    # Parsed as a UUID: any spelling (upper case, no dashes) finds the task on every database.
    return tasks.get_task(session=session, owner=user, task_id=str(task_id))


@router.get("/{result_id}", response_model=InferenceResultOut)
def read_result(result_id: RowId, user: CurrentUser, session: ReadSession) -> InferenceResult:
    return inference.get_result(session=session, owner=user, result_id=result_id)
