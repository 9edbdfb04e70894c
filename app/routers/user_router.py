"""Register, log in, and read or change your own account."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from app.database.tables import User
from app.dependencies import CurrentUser, ServicesDep, WriteSession
from app.schemas.error import error_responses
from app.schemas.user import Token, UserCreate, UserOut, UserUpdate
from app.services import auth, users

router = APIRouter(prefix="/users", tags=["users"], responses=error_responses(422, 503))


@router.post("/", status_code=201, response_model=UserOut, responses=error_responses(409, 413))
def register(user_in: UserCreate, session: WriteSession) -> User:
    return users.create_user(session=session, user_in=user_in)


@router.post("/token", responses=error_responses(401, 429))
def log_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    services: ServicesDep,
) -> Token:
    return auth.log_in(
        database=services.database,
        tokens=services.tokens,
        limiter=services.login_limiter,
        username=form.username,
        password=form.password,
        client=request.client.host if request.client else "unknown",
    )


@router.get("/me", response_model=UserOut, responses=error_responses(401))
def read_me(user: CurrentUser) -> User:
    return user


@router.put("/me", response_model=UserOut, responses=error_responses(401, 409, 413))
def update_me(
    user_in: UserUpdate, user: CurrentUser, session: WriteSession, services: ServicesDep
) -> User:
    return users.update_user(
        session=session, notifier=services.notifier, user_id=user.id, user_in=user_in
    )
