"""Websocket handshakes that never answer 500.

- A path no route matches (``/ws/searches/-1/``, ``/ws/searches/abc/``): the
  socket is accepted and closed with 4404, the app's "not found" code (Daphne can
  only refuse a handshake with 403 and has no way to send a 404).
- Redis away (the channel layer cannot join the group): the handshake is
  refused, or an open socket closed with 1013 "try again later"; the page
  reconnects with back-off, as it does after any lost connection.
"""
from __future__ import annotations

import logging

from nasweb.unavailable import SERVICE_ERRORS

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404
CLOSE_TRY_AGAIN_LATER = 1013


class WebsocketGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        state = {"accepted": False, "closed": False}

        async def tracked_send(message):
            if message["type"] == "websocket.accept":
                state["accepted"] = True
            elif message["type"] == "websocket.close":
                state["closed"] = True
            await send(message)

        try:
            return await self.app(scope, receive, tracked_send)
        except ValueError as exc:
            if "No route found" not in str(exc) or state["accepted"]:
                raise
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_NOT_FOUND})
        except SERVICE_ERRORS as exc:
            log.warning("websocket %s: Redis unavailable: %r", scope.get("path"), exc)
            if not state["closed"]:
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
