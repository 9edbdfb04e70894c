"""Limits failed logins per username and client, so passwords cannot be guessed at speed."""

import math
import threading
import time
from collections import deque

# Bounds the memory an attacker can make us spend by trying many usernames.
MAX_TRACKED_KEYS = 10_000


class LoginLimiter:
    def __init__(self, *, max_attempts: int, window_seconds: float) -> None:
        self.max_attempts = max_attempts
        self.window_seconds = window_seconds
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(username: str, client: str) -> str:
        return f"{username.strip().lower()}|{client}"

    def acquire(self, key: str) -> int:
        """Count an attempt, or say how many seconds to wait; 0 means go ahead.

        The attempt counts as a failure until ``reset`` says it succeeded, so that many
        guesses sent at once cannot all pass the check before any of them has failed.
        """
        now = time.monotonic()
        with self._lock:
            failures = self._recent(key, now)
            if len(failures) >= self.max_attempts:
                return max(1, math.ceil(failures[0] + self.window_seconds - now))
            if key not in self._failures and len(self._failures) >= MAX_TRACKED_KEYS:
                self._forget_expired(now)
            self._failures.setdefault(key, failures).append(now)
            return 0

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window_seconds:
            failures.popleft()
        return failures

    def _forget_expired(self, now: float) -> None:
        for key in list(self._failures):
            if not self._recent(key, now):
                del self._failures[key]
        if len(self._failures) >= MAX_TRACKED_KEYS:
            oldest = min(self._failures, key=lambda k: self._failures[k][-1])
            del self._failures[oldest]
