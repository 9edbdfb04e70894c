"""Live task updates over a WebSocket: `/ws/inference?token=<JWT>`."""

import asyncio

from fastapi import APIRouter, WebSocket

from app.dependencies import ServicesDep, SocketIdentity
from app.services.notifier import CLOSE_POLICY_VIOLATION

router = APIRouter(tags=["websocket"])


@router.websocket("/ws/inference")
async def task_updates(
    websocket: WebSocket, identity: SocketIdentity, services: ServicesDep
) -> None:
    """Greets with `{"type": "connected"}`, then pushes every status change of your tasks.

    A text `ping` is answered with `pong`. A missing, expired or forged token is closed
    with code 1008, and so is the connection when its token expires or the password changes.
    """
    # Accept first so that the client sees the close code, not just a refused handshake.
    await websocket.accept()
    if identity is None:
        await websocket.close(
            code=CLOSE_POLICY_VIOLATION, reason="missing, invalid or expired token"
        )
        return
    user = identity.user
    subscription = services.notifier.subscribe(
        user.id, websocket, expires_at=identity.claims.expires_at
    )
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
        services.notifier.unsubscribe(subscription)
        sender.cancel()
        # A client that vanished makes the sender fail too; that is the normal end, not an error.
        await asyncio.gather(sender, return_exceptions=True)
