"""Limits failed logins, so passwords cannot be guessed at speed.

Two counts, each over a sliding window: attempts per username and client (guessing one
account's password), and attempts per client across all usernames (trying leaked passwords
on many accounts). An attempt counts as failed from the moment it starts, so that many
guesses sent at once cannot all pass the check before any of them has failed; a success
takes it back (and clears that username's count), and so does an attempt that never got an
answer from the database (a 503 must not lock people out afterwards).
"""

import contextlib
import math
import threading
import time
import unicodedata
from collections import deque
from dataclasses import dataclass

from app.utils.exceptions import TooManyRequestsError

# Bounds the memory an attacker can make us spend by trying many usernames.
MAX_TRACKED_KEYS = 10_000


class LoginLimiter:
    def __init__(
        self, *, max_attempts: int, max_attempts_per_client: int, window_seconds: float
    ) -> None:
        self.max_attempts = max_attempts
        self.max_attempts_per_client = max_attempts_per_client
        self.window_seconds = window_seconds
        self._attempts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def begin(self, username: str, client: str) -> "LoginAttempt":
        """Count an attempt, or refuse it with 429 and how long to wait."""
        attempt = LoginAttempt(
            self, f"user|{_comparable(username)}|{client}", f"client|{client}", time.monotonic()
        )
        with self._lock:
            for key, limit in (
                (attempt.user_key, self.max_attempts),
                (attempt.client_key, self.max_attempts_per_client),
            ):
                recent = self._recent(key, attempt.started)
                if len(recent) >= limit:
                    wait = max(1, math.ceil(recent[0] + self.window_seconds - attempt.started))
                    raise TooManyRequestsError(
                        f"too many failed logins; try again in {wait} s", retry_after=wait
                    )
            for key in (attempt.user_key, attempt.client_key):
                if key not in self._attempts and len(self._attempts) >= MAX_TRACKED_KEYS:
                    self._forget_expired(attempt.started)
                self._attempts.setdefault(key, deque()).append(attempt.started)
        return attempt

    def _take_back(self, key: str, stamp: float, *, all_of_key: bool = False) -> None:
        with self._lock:
            attempts = self._attempts.get(key)
            if attempts is None:
                return
            if all_of_key:
                del self._attempts[key]
                return
            with contextlib.suppress(ValueError):  # already out of the window
                attempts.remove(stamp)
            if not attempts:
                del self._attempts[key]

    def _recent(self, key: str, now: float) -> deque[float]:
        attempts = self._attempts.get(key, deque())
        while attempts and attempts[0] <= now - self.window_seconds:
            attempts.popleft()
        return attempts

    def _forget_expired(self, now: float) -> None:
        for key in list(self._attempts):
            if not self._recent(key, now):
                del self._attempts[key]
        if len(self._attempts) >= MAX_TRACKED_KEYS:
            oldest = min(self._attempts, key=lambda k: self._attempts[k][-1])
            del self._attempts[oldest]


def _comparable(username: str) -> str:
    """A username as the database compares it: case and accents do not count (MySQL's
    utf8mb4_unicode_ci finds "Ábc" for "abc"), so neither may they make a fresh count."""
    decomposed = unicodedata.normalize("NFKD", username.strip().casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


@dataclass(frozen=True)
class LoginAttempt:
    limiter: LoginLimiter
    user_key: str
    client_key: str
    started: float

    def succeeded(self) -> None:
        """Right password: this username's failures from this client are forgiven."""
        self.limiter._take_back(self.user_key, self.started, all_of_key=True)
        self.limiter._take_back(self.client_key, self.started)

    def void(self) -> None:
        """No answer either way (the database failed): the attempt does not count."""
        self.limiter._take_back(self.user_key, self.started)
        self.limiter._take_back(self.client_key, self.started)
