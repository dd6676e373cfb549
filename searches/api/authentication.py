"""Personal API tokens: ``Authorization: Bearer <token>``.

A token authenticates as its owner, so it sees exactly what the owner sees
in the pages: their own searches and nothing else. Revoking it takes effect
on the next request.
"""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from searches import selectors, services

KEYWORDS = (b"bearer", b"token")


def key_from_header(value: bytes) -> str | None:
    """The token in an Authorization header's value; None when it is another scheme.
    Raises ValueError when it is a bearer header of the wrong shape."""
    parts = value.split()
    if not parts or parts[0].lower() not in KEYWORDS:
        return None
    if len(parts) != 2:
        raise ValueError("Send the token as 'Authorization: Bearer <token>'.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("A token is plain ASCII.") from None


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        try:
            key = key_from_header(get_authorization_header(request))
        except ValueError as exc:
            raise AuthenticationFailed(str(exc)) from None
        if key is None:
            return None
        token = selectors.api_token_lookup(key)
        if token is None:
            raise AuthenticationFailed("Invalid or revoked token.")
        services.api_token_touch(token)
        return token.owner, token

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "searches.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "nas_…",
                "description": "A personal token from Settings → API tokens."}
