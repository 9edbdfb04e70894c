"""Request and response bodies for asynchronous inference tasks."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, computed_field

from app.schemas.inference import InferenceRequest


def task_url(task_id: str) -> str:
    return f"/images/inference/tasks/{task_id}"


def result_url(result_id: int | None) -> str | None:
    return None if result_id is None else f"/images/inference/{result_id}"


class TaskCreate(InferenceRequest):
    task_id: UUID | None = Field(default=None, description="Your own id for the task (a UUID)")


class TaskAccepted(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    task_id: str = Field(validation_alias="id")
    status: str
    image_id: int
    model_name: str

    @computed_field(
        description="The task's status URL, the same as `status_url`: poll it until the task "
        "is finished; the finished task then gives the result's own `result_url`."
    )
    def result_url(self) -> str:
        return task_url(self.task_id)

    @computed_field
    def status_url(self) -> str:
        return task_url(self.task_id)


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    task_id: str = Field(validation_alias="id")
    status: str
    image_id: int
    model_name: str
    result_id: int | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field
    def result_url(self) -> str | None:
        return result_url(self.result_id)

    @computed_field
    def status_url(self) -> str:
        return task_url(self.task_id)
