"""Password hashing, JWT access tokens and the signing key."""

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from jose import JWTError, jwt
from passlib.context import CryptContext

from app.schemas.ids import MAX_ROW_ID

logger = logging.getLogger(__name__)

JWT_ALGORITHM = "HS256"
SECRET_KEY_FILE = "secret_key"
# Values people leave in config files; never sign tokens with them.
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "your_secret_key_for_jwt"}
MIN_SECRET_LENGTH = 32

# argon2 for new hashes; bcrypt hashes from older deployments still verify and are upgraded.
password_context = CryptContext(schemes=["argon2", "bcrypt"], deprecated="auto")


def hash_password(password: str) -> str:
    hashed: str = password_context.hash(password)
    return hashed


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """Whether the password matches, and a new hash when the stored one is outdated."""
    outcome: tuple[bool, str | None] = password_context.verify_and_update(password, hashed)
    return outcome


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def burn_password_check(password: str) -> None:
    """Spend the time of a real check, so unknown usernames cannot be told apart by timing."""
    password_context.verify(password, _dummy_hash())


def resolve_secret_key(configured: str, data_dir: Path) -> str:
    """The configured key, or a random one kept in data_dir when the setting is a placeholder."""
    if configured.strip().lower() not in PLACEHOLDER_SECRETS:
        if len(configured) < MIN_SECRET_LENGTH:
            logger.warning(
                "SECRET_KEY is shorter than %d characters; use a longer one", MIN_SECRET_LENGTH
            )
        return configured
    key_file = data_dir / SECRET_KEY_FILE
    if key_file.exists():
        key = key_file.read_text(encoding="utf-8").strip()
        if key:
            logger.warning("SECRET_KEY is not set; using the generated key in %s", key_file)
            return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key)
    logger.warning("SECRET_KEY is not set; generated a random key and saved it to %s", key_file)
    return key


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    token_version: int
    expires_at: int  # Unix time


class TokenService:
    """Issues and checks signed access tokens; `sub` is the user id, never the username."""

    def __init__(self, secret_key: str, lifetime: timedelta) -> None:
        self._secret_key = secret_key
        self.lifetime = lifetime

    def issue(self, *, user_id: int, token_version: int) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "ver": token_version,
            "iat": int(now.timestamp()),
            "exp": int((now + self.lifetime).timestamp()),
        }
        return jwt.encode(claims, self._secret_key, algorithm=JWT_ALGORITHM)

    def read(self, token: str) -> TokenClaims | None:
        """The claims of a valid, unexpired token; None for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._secret_key,
                algorithms=[JWT_ALGORITHM],
                options={"require_exp": True, "require_sub": True},
            )
            user_id, token_version = int(claims["sub"]), int(claims["ver"])
            expires_at = int(claims["exp"])
        except (JWTError, KeyError, TypeError, ValueError):
            return None
        if not 1 <= user_id <= MAX_ROW_ID:
            return None
        return TokenClaims(user_id=user_id, token_version=token_version, expires_at=expires_at)
