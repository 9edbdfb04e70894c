"""Run a model on one of your images and read the stored results."""

from fastapi import APIRouter

from app.database.tables import InferenceResult
from app.dependencies import CurrentUser, ModelPoolDep, SessionDep, StoreDep
from app.schemas.inference import InferenceRequest, InferenceResultOut
from app.services import inference

router = APIRouter(prefix="/images/inference", tags=["inference"])


@router.post("", response_model=InferenceResultOut)
def infer(
    body: InferenceRequest,
    user: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    pool: ModelPoolDep,
) -> InferenceResult:
    return inference.run_inference(
        session=session,
        store=store,
        pool=pool,
        owner=user,
        image_id=body.image_id,
        model_name=body.model_name,
    )


@router.get("/{result_id}", response_model=InferenceResultOut)
def read_result(result_id: int, user: CurrentUser, session: SessionDep) -> InferenceResult:
    return inference.get_result(session=session, owner=user, result_id=result_id)
