"""Response bodies for images."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, computed_field

from app.schemas.inference import InferenceResultOut


class ImageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    filename: str
    content_type: str
    format: str
    width: int
    height: int
    size: int
    sha256: str
    created_at: datetime

    @computed_field
    def file_url(self) -> str:
        return f"/images/{self.id}/file"


class ImageDetail(ImageOut):
    results: list[InferenceResultOut]
