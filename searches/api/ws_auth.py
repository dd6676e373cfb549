"""Token authentication for the websocket, for clients without a browser session (the CLI).

A connection that sends ``Authorization: Bearer <token>`` is the token's
owner; a bad token is anonymous (the consumer then closes with 4401). A
connection without the header keeps the session user.
"""
from __future__ import annotations

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from searches import selectors, services

from .authentication import key_from_header


def _user_for(key: str):
    token = selectors.api_token_lookup(key)
    if token is None:
        return AnonymousUser()
    services.api_token_touch(token)
    return token.owner


class TokenAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        header = dict(scope.get("headers", [])).get(b"authorization")
        if header is not None:
            try:
                key = key_from_header(header)
            except ValueError:
                key = ""
            if key is not None:
                user = await database_sync_to_async(_user_for)(key) if key else AnonymousUser()
                scope = dict(scope, user=user)
        return await self.inner(scope, receive, send)
