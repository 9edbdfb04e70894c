"""Logging in (checks the password, limits guessing, issues a token) and reading tokens."""

from dataclasses import dataclass

from app.database.engine import Database
from app.database.tables import User
from app.schemas.user import MAX_PASSWORD_LENGTH, Token
from app.services.login_limiter import LoginLimiter
from app.services.security import TokenClaims, TokenService
from app.services.users import authenticate, get_user
from app.utils.exceptions import AuthenticationError


def log_in(
    *,
    database: Database,
    tokens: TokenService,
    limiter: LoginLimiter,
    username: str,
    password: str,
    client: str,
) -> Token:
    database.check_answering()
    attempt = limiter.begin(username, client)
    if len(password) > MAX_PASSWORD_LENGTH:
        # No account has such a password; hashing it would only cost us (or fail).
        raise AuthenticationError("incorrect username or password")
    try:
        user = authenticate(database=database, username=username, password=password)
    except Exception:
        attempt.void()  # the database failed, not the password: it must not lock anyone out
        raise
    if user is None:
        raise AuthenticationError("incorrect username or password")
    attempt.succeeded()
    return Token(
        access_token=tokens.issue(user_id=user.id, token_version=user.token_version),
        expires_in=int(tokens.lifetime.total_seconds()),
    )


@dataclass(frozen=True)
class Identity:
    """Who a request is from: the user (a detached row) and the claims of their token."""

    user: User
    claims: TokenClaims


def identify(*, database: Database, tokens: TokenService, token: str | None) -> Identity:
    """The user a bearer token belongs to, and its claims; AuthenticationError otherwise."""
    claims = tokens.read(token) if token else None
    if claims is None:
        raise AuthenticationError(
            "missing, invalid or expired token" if token else "not authenticated"
        )
    # A session of its own, closed at once: the route may run for a while (e.g. inference).
    with database.read_session() as session:
        user = get_user(session, claims.user_id)
    if user is None or user.token_version != claims.token_version:
        raise AuthenticationError("token is no longer valid; log in again")
    return Identity(user, claims)
