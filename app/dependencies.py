"""Dependencies routes ask for, named once as Annotated aliases; HTTP and WebSocket alike.

The accessors are ``async def`` only so that FastAPI calls them inline: they do no I/O, and
a plain ``def`` would cost a thread-pool hop on every request.
"""

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection, Request

from app.container import Services
from app.database.tables import User
from app.schemas.ids import MAX_ROW_ID
from app.services.auth import Identity, identify
from app.utils.exceptions import AuthenticationError

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/users/token", auto_error=False)


async def get_services(connection: HTTPConnection) -> Services:
    services = connection.app.state.services
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


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


async def get_read_session(services: ServicesDep) -> AsyncIterator[Session]:
    """A session that only reads: on SQLite it never waits for a writer."""
    services.database.check_answering()
    async for session in _closing(services.database.read_session()):
        yield session


async def get_write_session(services: ServicesDep) -> AsyncIterator[Session]:
    """A session that writes: on SQLite its transaction takes the write lock when it begins."""
    services.database.check_answering()
    async for session in _closing(services.database.session()):
        yield session


# Closed as soon as the route returns, not after the response is sent: a slow download
# must not hold a pooled connection (and SQLite's WAL) for as long as the client reads.
ReadSession = Annotated[Session, Depends(get_read_session, scope="function")]
WriteSession = Annotated[Session, Depends(get_write_session, scope="function")]


async def get_identity(
    services: ServicesDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Identity:
    services.database.check_answering()
    return await run_in_threadpool(
        identify, database=services.database, tokens=services.tokens, token=token
    )


async def get_current_user(identity: Annotated[Identity, Depends(get_identity)]) -> User:
    return identity.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_socket_identity(
    services: ServicesDep, token: Annotated[str | None, Query()] = None
) -> Identity | None:
    """A WebSocket's user, from ``?token=`` (browsers cannot set headers on one); None if bad."""
    try:
        return await run_in_threadpool(
            identify, database=services.database, tokens=services.tokens, token=token
        )
    except AuthenticationError:
        return None


SocketIdentity = Annotated[Identity | None, Depends(get_socket_identity)]


async def one_file_part(request: Request) -> None:
    """Refuses an upload with several `file` parts, rather than keeping one of them silently."""
    # The route has parsed the form already; this reads Starlette's cached copy.
    parts = (await request.form()).getlist("file")
    if len(parts) > 1:
        raise RequestValidationError(
            [
                {
                    "type": "too_many_files",
                    "loc": ("body", "file"),
                    "msg": f"send one file per upload, not {len(parts)}",
                    "input": None,
                }
            ]
        )


async def client_disconnected(request: Request) -> None:
    """Completes when the client of a request whose body has been read goes away."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


# A row id in a path: out-of-range numbers are a 422 here rather than an error in the database.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
