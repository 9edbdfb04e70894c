"""Logging in: checks the password, limits guessing, and issues an access token."""

from sqlalchemy.orm import Session

from app.schemas.user import Token
from app.services.login_limiter import LoginLimiter
from app.services.security import TokenService
from app.services.users import authenticate
from app.utils.exceptions import AuthenticationError, TooManyRequestsError


def log_in(
    *,
    session: Session,
    tokens: TokenService,
    limiter: LoginLimiter,
    username: str,
    password: str,
    client: str,
) -> Token:
    key = limiter.key(username, client)
    wait = limiter.acquire(key)
    if wait:
        raise TooManyRequestsError(
            f"too many failed logins; try again in {wait} s", retry_after=wait
        )
    user = authenticate(session=session, username=username, password=password)
    if user is None:
        raise AuthenticationError("incorrect username or password")
    limiter.reset(key)
    return Token(
        access_token=tokens.issue(user_id=user.id, token_version=user.token_version),
        expires_in=int(tokens.lifetime.total_seconds()),
    )
