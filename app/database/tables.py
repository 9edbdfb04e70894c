"""ORM tables: users, their images, and the inference results computed from them."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

MYSQL_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
# Ids are never handed out twice: on SQLite that takes AUTOINCREMENT (MySQL never reuses them).
TABLE_ARGS = {**MYSQL_TABLE_ARGS, "sqlite_autoincrement": True}


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (microseconds on MySQL too), always read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def ci_string(length: int) -> Any:
    """A string that compares case-insensitively on both databases, as MySQL's collation does."""
    return String(length).with_variant(String(length, collation="NOCASE"), "sqlite")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(ci_string(50), unique=True)
    email: Mapped[str] = mapped_column(ci_string(255), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    # Bumped on every password change; tokens carrying an older value stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        Index("ix_images_owner_created", "owner_id", "created_at", "id"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    stored_path: Mapped[str] = mapped_column(String(512), unique=True)
    content_type: Mapped[str] = mapped_column(String(50))
    format: Mapped[str] = mapped_column(String(10))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)

    results: Mapped[list["InferenceResult"]] = relationship(
        back_populates="image",
        order_by="InferenceResult.id.desc()",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class InferenceResult(Base):
    __tablename__ = "inference_results"
    __table_args__ = (
        Index("ix_results_owner_created", "owner_id", "created_at"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(255))
    confidence: Mapped[float] = mapped_column(Double)
    predictions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    processing_time_ms: Mapped[float] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)

    image: Mapped[Image] = relationship(back_populates="results")


class TaskStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


UNFINISHED_STATUSES = (TaskStatus.PENDING, TaskStatus.PROCESSING)


class InferenceTask(Base):
    """An accepted asynchronous inference request: stored before any work, so none is lost."""

    __tablename__ = "inference_tasks"
    __table_args__ = (
        Index("ix_tasks_owner_created", "owner_id", "created_at"),
        Index("ix_tasks_status_created", "status", "created_at"),
        MYSQL_TABLE_ARGS,
    )

    # A task id is the owner's own (a client may choose it): two users may use the same one,
    # and neither learns that the other did.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.PENDING)
    result_id: Mapped[int | None] = mapped_column(
        ForeignKey("inference_results.id", ondelete="SET NULL"), default=None
    )
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # How many times a worker has started this task; restarts after a crash count too.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
