"""Run a model on one of your images and read the stored results."""

from functools import partial
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.database.tables import InferenceResult, InferenceTask
from app.dependencies import (
    CurrentUser,
    InputCacheDep,
    ModelPoolDep,
    ReadSessionDep,
    RowId,
    SessionDep,
    StoreDep,
    TaskRunnerDep,
)
from app.schemas.inference import InferenceRequest, InferenceResultOut
from app.schemas.task import TaskAccepted, TaskCreate, TaskOut, task_url
from app.services import inference, tasks
from app.services.task_runner import TaskRef

router = APIRouter(prefix="/images/inference", tags=["inference"])


@router.post("", response_model=InferenceResultOut)
async def infer(
    body: InferenceRequest,
    request: Request,
    user: CurrentUser,
    read_session: ReadSessionDep,
    session: SessionDep,
    store: StoreDep,
    cache: InputCacheDep,
    pool: ModelPoolDep,
) -> InferenceResult:
    # Database and decoding work runs in the thread pool; only the wait for the model's
    # batch happens on the event loop, where a client that leaves can be noticed.
    prepared = await run_in_threadpool(
        partial(
            inference.prepare_input,
            session=read_session,
            store=store,
            cache=cache,
            pool=pool,
            owner=user,
            image_id=body.image_id,
            model_name=body.model_name,
        )
    )
    output = await inference.predict_while_connected(prepared, request)
    return await run_in_threadpool(
        partial(inference.save_result, session=session, prepared=prepared, output=output)
    )


@router.post("/async", status_code=202, response_model=TaskAccepted)
def submit_task(
    body: TaskCreate,
    background: BackgroundTasks,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    runner: TaskRunnerDep,
    pool: ModelPoolDep,
) -> TaskAccepted:
    task = tasks.create_task(
        session=session, runner=runner, default_model=pool.default_model, owner=user, task_in=body
    )
    background.add_task(runner.enqueue, TaskRef.of(task))
    response.headers["Location"] = task_url(task.id)
    return TaskAccepted(
        task_id=task.id, status=task.status, image_id=task.image_id, model_name=task.model_name
    )


@router.get("/tasks/{task_id}", response_model=TaskOut)
def read_task(task_id: UUID, user: CurrentUser, session: SessionDep) -> InferenceTask:
    # Parsed as a UUID: any spelling (upper case, no dashes) finds the task on every database.
    return tasks.get_task(session=session, owner=user, task_id=str(task_id))


@router.get("/{result_id}", response_model=InferenceResultOut)
def read_result(result_id: RowId, user: CurrentUser, session: SessionDep) -> InferenceResult:
    return inference.get_result(session=session, owner=user, result_id=result_id)
