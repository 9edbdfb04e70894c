"""Upload, list, fetch, download and delete your images."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from fastapi.responses import FileResponse

from app.database.tables import Image
from app.dependencies import (
    CurrentUser,
    ReadSession,
    RowId,
    ServicesDep,
    WriteSession,
    one_file_part,
)
from app.schemas.error import error_responses
from app.schemas.ids import MAX_ROW_ID
from app.schemas.image import ImageDetail, ImageOut
from app.services import images

router = APIRouter(prefix="/images", tags=["images"], responses=error_responses(401, 422, 503))

UPLOAD_PATH = "/images/upload"


@router.post(
    "/upload",
    status_code=201,
    response_model=ImageOut,
    responses=error_responses(413, 415, 507),
    dependencies=[Depends(one_file_part)],
)
def upload_image(
    file: Annotated[UploadFile, File(description="A JPEG, PNG, BMP or GIF image")],
    user: CurrentUser,
    session: WriteSession,
    services: ServicesDep,
) -> Image:
    return images.create_image(
        session=session,
        store=services.store,
        owner=user,
        data=file.file.read(),
        client_filename=file.filename,
        max_size=services.settings.app.max_upload_size,
        max_pixels=services.settings.app.max_image_pixels,
    )


@router.get("/", response_model=list[ImageOut])
def list_images(
    response: Response,
    user: CurrentUser,
    session: ReadSession,
    skip: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[Image]:
    found, total = images.list_images(session=session, owner=user, skip=skip, limit=limit)
    response.headers["X-Total-Count"] = str(total)
    return found


@router.get("/{image_id}", response_model=ImageDetail, responses=error_responses(404))
def read_image(image_id: RowId, user: CurrentUser, session: ReadSession) -> Image:
    return images.get_image(session=session, owner_id=user.id, image_id=image_id)


@router.get("/{image_id}/file", response_class=FileResponse, responses=error_responses(404))
def download_image(
    image_id: RowId, user: CurrentUser, session: ReadSession, services: ServicesDep
) -> FileResponse:
    stored = images.get_image_file(
        session=session, store=services.store, owner=user, image_id=image_id
    )
    return FileResponse(stored.path, media_type=stored.content_type, filename=stored.download_name)


@router.delete("/{image_id}", status_code=204, responses=error_responses(404))
def delete_image(
    image_id: RowId, user: CurrentUser, session: WriteSession, services: ServicesDep
) -> None:
    images.delete_image(session=session, store=services.store, owner=user, image_id=image_id)
