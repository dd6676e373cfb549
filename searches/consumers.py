"""The websocket of one search: a snapshot from Postgres, then live events."""
from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import selectors
from .events import group_name

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class SearchConsumer(AsyncJsonWebsocketConsumer):
    """Joins the search's group before reading the snapshot, so nothing falls
    between the two; the page drops epochs whose sequence number it has seen."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.search_id = int(self.scope["url_route"]["kwargs"]["search_id"])
        if not await database_sync_to_async(selectors.search_owned_by)(user, self.search_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = group_name(self.search_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(await database_sync_to_async(selectors.search_snapshot)(
            self.search_id, self._after_seq()))

    def _after_seq(self) -> int:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            return max(0, int(query.get("after", ["0"])[0]))
        except ValueError:
            return 0

    async def receive_json(self, content, **kwargs):
        # The page may ask again for what it missed without reconnecting.
        if isinstance(content, dict) and content.get("type") == "resume":
            try:
                after = max(0, int(content.get("after", 0)))
            except (TypeError, ValueError):
                return
            await self.send_json(await database_sync_to_async(selectors.search_snapshot)(self.search_id, after))

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def search_event(self, message):
        await self.send_json(message["event"])
