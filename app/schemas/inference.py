"""Request and response bodies for inference."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.ids import MAX_ROW_ID


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    image_id: int = Field(ge=1, le=MAX_ROW_ID)
    model_name: str | None = Field(default=None, min_length=1, max_length=100)


class Prediction(BaseModel):
    label: str
    class_id: int
    confidence: float


class InferenceResultOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: int
    image_id: int
    model_name: str
    model_version: str
    predictions: list[Prediction]
    label: str
    confidence: float
    processing_time_ms: float
    created_at: datetime
