"""Personal API tokens: create, revoke, note their use."""
from __future__ import annotations

import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from ..models import ApiToken
from ..selectors_deliverables import api_token_digest


API_TOKEN_PREFIX = "nas_"
MAX_ACTIVE_API_TOKENS = 50


def api_token_create(*, owner, name: str):
    """A new personal API token; returns (token, key). The key is shown once and never stored."""
    name = str(name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. the machine that will use it."})
    if len(name) > 100:
        raise ValidationError({"name": "A token name has at most 100 characters."})
    if ApiToken.objects.filter(owner=owner, revoked_at__isnull=True).count() >= MAX_ACTIVE_API_TOKENS:
        raise ValidationError({"name": f"You have {MAX_ACTIVE_API_TOKENS} active tokens; revoke one first."})
    key = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(owner=owner, name=name, key_hash=api_token_digest(key),
                                    prefix=key[:len(API_TOKEN_PREFIX) + 6])
    return token, key


def api_token_revoke(token):
    """Revoke a token at once: the next request that presents it is refused."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    return token


def api_token_touch(token) -> None:
    """Note that a token was used, at most once a minute (not a write per request)."""


    now = timezone.now()
    ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(seconds=60)),
                            pk=token.pk).update(last_used_at=now)
