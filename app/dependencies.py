"""Dependencies routes ask for, named once as Annotated aliases.

The accessors are `async def` only so that FastAPI calls them inline: they do no I/O, and a
plain `def` would cost a thread-pool hop on every request.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import Depends, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from app.config import Settings
from app.database.engine import Database
from app.database.tables import User
from app.schemas.ids import MAX_ROW_ID
from app.services.input_cache import InputCache
from app.services.login_limiter import LoginLimiter
from app.services.model_pool import ModelPool
from app.services.notifier import TaskNotifier
from app.services.security import TokenClaims, TokenService
from app.services.storage import ImageStore
from app.services.task_runner import TaskRunner
from app.services.users import get_user
from app.utils.exceptions import AuthenticationError

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/users/token", auto_error=False)


def _app_state(attribute: str) -> Callable[[HTTPConnection], Awaitable[Any]]:
    """A dependency returning one of the objects create_app keeps in `app.state`."""

    async def dependency(connection: HTTPConnection) -> Any:
        return getattr(connection.app.state, attribute)

    return dependency


READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}


# Rolling back what a failed route left open must never wait for a free thread in the shared
# pool: those threads may all be writers waiting for the very lock this rollback releases.
_session_closer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="session-close")


async def _closing(session: Session) -> AsyncIterator[Session]:
    # Opening a session does no I/O (it connects on first use), so it happens inline; only a
    # close that must roll back an unfinished transaction goes to a thread.
    try:
        yield session
    finally:
        if session.in_transaction():
            await asyncio.get_running_loop().run_in_executor(_session_closer, session.close)
        else:
            session.close()


async def get_session(connection: HTTPConnection) -> AsyncIterator[Session]:
    database: Database = connection.app.state.database
    # Reads never wait for SQLite's write lock; a WebSocket only reads (its token's user).
    reads_only = connection.scope.get("method", "GET") in READ_ONLY_METHODS
    async for session in _closing(database.read_session() if reads_only else database.session()):
        yield session


async def get_read_session(connection: HTTPConnection) -> AsyncIterator[Session]:
    """A session for reading only, whatever the method: it never waits for writers."""
    database: Database = connection.app.state.database
    async for session in _closing(database.read_session()):
        yield session


SettingsDep = Annotated[Settings, Depends(_app_state("settings"))]
# Closed as soon as the route returns, not after the response is sent: a slow download
# must not hold a pooled connection (and SQLite's WAL) for as long as the client reads.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
StoreDep = Annotated[ImageStore, Depends(_app_state("store"))]
InputCacheDep = Annotated[InputCache, Depends(_app_state("input_cache"))]
ModelPoolDep = Annotated[ModelPool, Depends(_app_state("model_pool"))]
NotifierDep = Annotated[TaskNotifier, Depends(_app_state("notifier"))]
TaskRunnerDep = Annotated[TaskRunner, Depends(_app_state("task_runner"))]
TokenServiceDep = Annotated[TokenService, Depends(_app_state("tokens"))]
LoginLimiterDep = Annotated[LoginLimiter, Depends(_app_state("login_limiter"))]


def user_from_token(session: Session, tokens: TokenService, token: str | None) -> User:
    """The user a bearer token belongs to; AuthenticationError for anything invalid."""
    return authenticated(session, tokens, token)[0]


def authenticated(
    session: Session, tokens: TokenService, token: str | None
) -> tuple[User, TokenClaims]:
    """The user a bearer token belongs to, and the token's claims."""
    claims = tokens.read(token) if token else None
    if claims is None:
        raise AuthenticationError(
            "missing, invalid or expired token" if token else "not authenticated"
        )
    user = get_user(session, claims.user_id)
    if user is None or user.token_version != claims.token_version:
        raise AuthenticationError("token is no longer valid; log in again")
    # Release the read transaction now: the route may run for a while (e.g. inference).
    session.commit()
    return user, claims


async def get_current_user(
    session: ReadSessionDep,
    tokens: TokenServiceDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    # One thread-pool hop for the lookup; the dependency itself runs on the event loop.
    return await run_in_threadpool(user_from_token, session, tokens, token)


CurrentUser = Annotated[User, Depends(get_current_user)]

# A row id in a path: out-of-range numbers are a 422 here rather than an error in the database.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
