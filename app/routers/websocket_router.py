"""Live task updates over a WebSocket: `/ws/inference?token=<JWT>`."""

import asyncio
import logging

from fastapi import APIRouter, WebSocket
from fastapi.concurrency import run_in_threadpool

from app.database.tables import User
from app.dependencies import authenticated
from app.services.notifier import TaskNotifier
from app.services.security import TokenClaims
from app.utils.exceptions import AuthenticationError

logger = logging.getLogger(__name__)
router = APIRouter(tags=["websocket"])

CLOSE_POLICY_VIOLATION = 1008


def _authenticate(websocket: WebSocket, token: str | None) -> tuple[User, TokenClaims] | None:
    state = websocket.app.state
    with state.database.read_session() as session:
        try:
            return authenticated(session, state.tokens, token)
        except AuthenticationError:
            return None


@router.websocket("/ws/inference")
async def task_updates(websocket: WebSocket, token: str | None = None) -> None:
    """Greets with `{"type": "connected"}`, then pushes every status change of your tasks.

    A text `ping` is answered with `pong`. A missing, expired or forged token is closed
    with code 1008, and so is the connection when its token expires or the password changes.
    """
    identity = await run_in_threadpool(_authenticate, websocket, token)
    # Accept first so that the client sees the close code, not just a refused handshake.
    await websocket.accept()
    if identity is None:
        await websocket.close(
            code=CLOSE_POLICY_VIOLATION, reason="missing, invalid or expired token"
        )
        return
    user, claims = identity
    notifier: TaskNotifier = websocket.app.state.notifier
    subscription = notifier.subscribe(user.id, websocket, expires_at=claims.expires_at)
    subscription.offer({"type": "connected", "user_id": user.id, "username": user.username})
    sender = asyncio.create_task(subscription.pump())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if (message.get("text") or "").strip().lower() == "ping":
                subscription.offer("pong")
    finally:
        notifier.unsubscribe(subscription)
        sender.cancel()
        # A client that vanished makes the sender fail too; that is the normal end, not an error.
        await asyncio.gather(sender, return_exceptions=True)
