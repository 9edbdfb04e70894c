"""Pushes task updates to every open WebSocket of the task's owner.

Updates are published from worker threads; each connection has its own bounded queue and
sender, so one slow client never delays the others or the worker.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

logger = logging.getLogger(__name__)

# A client this far behind is not reading; it is disconnected rather than buffered forever.
MAX_QUEUED_MESSAGES = 1000
CLOSE_TOO_SLOW = 1013  # "try again later"
CLOSE_POLICY_VIOLATION = 1008


@dataclass(frozen=True)
class CloseRequest:
    code: int
    reason: str


Outgoing = dict[str, Any] | str | CloseRequest


class Subscription:
    def __init__(self, user_id: int, websocket: WebSocket, *, expires_at: float) -> None:
        self.user_id = user_id
        self.websocket = websocket
        self.expires_at = expires_at  # Unix time: the token's expiry ends the subscription
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(MAX_QUEUED_MESSAGES)
        self.overflowed = False

    def offer(self, message: Outgoing) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            logger.warning("websocket of user %d is not reading; closing it", self.user_id)

    async def pump(self) -> None:
        """Send queued messages until the connection ends, the token expires or we close it."""
        while not self.overflowed:
            try:
                message = await asyncio.wait_for(self.queue.get(), self.expires_at - time.time())
            except TimeoutError:
                message = CloseRequest(CLOSE_POLICY_VIOLATION, "token expired")
            if self.websocket.application_state != WebSocketState.CONNECTED:
                return
            if isinstance(message, CloseRequest):
                await self.websocket.close(code=message.code, reason=message.reason)
                return
            if isinstance(message, str):
                await self.websocket.send_text(message)
            else:
                await self.websocket.send_json(message)
        await self.websocket.close(code=CLOSE_TOO_SLOW, reason="client is not reading")


class TaskNotifier:
    def __init__(self) -> None:
        self._subscriptions: dict[int, set[Subscription]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, user_id: int, websocket: WebSocket, *, expires_at: float) -> Subscription:
        subscription = Subscription(user_id, websocket, expires_at=expires_at)
        self._subscriptions.setdefault(user_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        owned = self._subscriptions.get(subscription.user_id)
        if owned is not None:
            owned.discard(subscription)
            if not owned:
                del self._subscriptions[subscription.user_id]

    def publish(self, user_id: int, message: dict[str, Any]) -> None:
        """Queue a message for all of a user's connections; safe to call from any thread."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._deliver, user_id, message)

    def disconnect_user(self, user_id: int, reason: str) -> None:
        """Close all of a user's connections (their tokens were revoked); any thread."""
        if self._loop is None or self._loop.is_closed():
            return
        request = CloseRequest(CLOSE_POLICY_VIOLATION, reason)
        self._loop.call_soon_threadsafe(self._deliver, user_id, request)

    def _deliver(self, user_id: int, message: Outgoing) -> None:
        for subscription in list(self._subscriptions.get(user_id, ())):
            subscription.offer(message)
