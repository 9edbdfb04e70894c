"""Uploading, listing and deleting a user's images: the row and its file go together."""

import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePath

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.database.tables import Image, User
from app.services.storage import ImageStore
from app.utils.exceptions import NotFoundError, PayloadTooLargeError
from app.utils.image_utils import ACCEPTED_EXTENSIONS, FILE_EXTENSIONS, inspect_image

MAX_FILENAME_LENGTH = 255


def display_filename(client_name: str | None, extension: str) -> str:
    """The client's file name, kept for display only (files are stored under server names).

    Control and format characters go: a right-to-left override would make "gpj.exe" read
    as "exe.jpg".
    """
    name = PurePath((client_name or "").replace("\\", "/")).name
    name = "".join(
        "_" if unicodedata.category(char) in ("Cc", "Cf", "Cs") else char for char in name
    )
    return name.strip()[:MAX_FILENAME_LENGTH] or f"upload.{extension}"


def create_image(
    *,
    session: Session,
    store: ImageStore,
    owner: User,
    data: bytes,
    client_filename: str | None,
    max_size: int,
    max_pixels: int,
) -> Image:
    if len(data) > max_size:
        raise PayloadTooLargeError(f"file is {len(data)} bytes; the limit is {max_size} bytes")
    info = inspect_image(data, max_pixels=max_pixels)
    stored_path = store.save(owner_id=owner.id, data=data, extension=info.extension)
    image = Image(
        owner_id=owner.id,
        filename=display_filename(client_filename, info.extension),
        stored_path=stored_path,
        content_type=info.content_type,
        format=info.format,
        width=info.width,
        height=info.height,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    try:
        session.add(image)
        session.commit()
    except BaseException:
        session.rollback()
        store.delete(stored_path)
        raise
    return image


def list_images(*, session: Session, owner: User, skip: int, limit: int) -> tuple[list[Image], int]:
    owned = Image.owner_id == owner.id
    total = session.scalar(select(func.count()).select_from(Image).where(owned)) or 0
    images = session.scalars(
        select(Image)
        .where(owned)
        .order_by(Image.created_at.desc(), Image.id.desc())
        .offset(skip)
        .limit(limit)
    ).all()
    return list(images), total


def get_image(*, session: Session, owner_id: int, image_id: int) -> Image:
    image = session.get(Image, image_id)
    # Another user's image is reported exactly like a missing one.
    if image is None or image.owner_id != owner_id:
        raise NotFoundError(f"image {image_id} not found")
    return image


@dataclass(frozen=True)
class ImageFile:
    """An image's stored file, as it is sent back: its bytes' type and a matching file name."""

    path: Path
    content_type: str
    download_name: str


def get_image_file(*, session: Session, store: ImageStore, owner: User, image_id: int) -> ImageFile:
    image = get_image(session=session, owner_id=owner.id, image_id=image_id)
    path = store.path(image.stored_path)
    if not path.is_file():
        raise NotFoundError(f"the file of image {image_id} is missing from storage")
    return ImageFile(path, image.content_type, download_filename(image.filename, image.format))


def download_filename(display_name: str, image_format: str) -> str:
    """The display name with an extension that matches the stored type ("x.html" -> "x.jpg")."""
    name = PurePath(display_name)
    if name.suffix.lower() in ACCEPTED_EXTENSIONS[image_format]:
        return display_name
    return f"{name.stem or 'image'}.{FILE_EXTENSIONS[image_format]}"


def delete_image(*, session: Session, store: ImageStore, owner: User, image_id: int) -> None:
    image = get_image(session=session, owner_id=owner.id, image_id=image_id)
    stored_path = image.stored_path
    session.delete(image)
    session.commit()
    # The row is gone first: a failure here leaves an orphan file, never a row without its file.
    store.delete(stored_path)
