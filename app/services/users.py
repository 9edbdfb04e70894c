"""Registering users, checking their credentials and changing their details."""

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database.engine import Database
from app.database.tables import User
from app.schemas.user import UserCreate, UserUpdate
from app.services.notifier import TaskNotifier
from app.services.security import burn_password_check, hash_password, verify_password
from app.utils.exceptions import ConflictError, NotFoundError


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def find_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.username) == username.strip().lower()))


def _ensure_available(
    session: Session, *, username: str | None, email: str | None, exclude_id: int | None = None
) -> None:
    for column, value in ((User.username, username), (User.email, email)):
        if value is None:
            continue
        query = select(User.id).where(func.lower(column) == value.lower())
        if exclude_id is not None:
            query = query.where(User.id != exclude_id)
        if session.scalar(query) is not None:
            raise ConflictError(f"{column.key} '{value}' is already taken")


def create_user(*, session: Session, user_in: UserCreate) -> User:
    # Hash before the transaction starts: it is slow by design and must not hold a lock.
    hashed_password = hash_password(user_in.password)
    _ensure_available(session, username=user_in.username, email=user_in.email)
    user = User(
        username=user_in.username,
        email=user_in.email.lower(),
        hashed_password=hashed_password,
        token_version=0,
    )
    session.add(user)
    _commit_unique(session)
    return user


def authenticate(*, database: Database, username: str, password: str) -> User | None:
    """The user these credentials belong to, or None."""
    with database.read_session() as session:
        user = find_by_username(session, username)
    # The password check is slow by design: it runs outside any transaction.
    if user is None:
        burn_password_check(password)
        return None
    valid, new_hash = verify_password(password, user.hashed_password)
    if not valid:
        return None
    if new_hash is not None:
        with database.session() as session:
            # Only if the password did not change meanwhile: a new one must not be undone.
            session.execute(
                update(User)
                .where(User.id == user.id, User.hashed_password == user.hashed_password)
                .values(hashed_password=new_hash)
            )
            session.commit()
    return user


def update_user(
    *, session: Session, notifier: TaskNotifier, user_id: int, user_in: UserUpdate
) -> User:
    new_hash = hash_password(user_in.password) if user_in.password is not None else None
    email = user_in.email.lower() if user_in.email is not None else None
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError("user not found")
    _ensure_available(session, username=user_in.username, email=email, exclude_id=user.id)
    if user_in.username is not None:
        user.username = user_in.username
    if email is not None:
        user.email = email
    if new_hash is not None:
        user.hashed_password = new_hash
        # Every token issued before the change stops working.
        user.token_version += 1
    _commit_unique(session)
    if new_hash is not None:
        # So do the WebSockets opened with them.
        notifier.disconnect_user(user.id, "password changed; log in again")
    return user


def _commit_unique(session: Session) -> None:
    # Two requests can pass the availability check at once; the unique index decides.
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError("username or email is already taken") from exc
