"""Accounts: the demo user's password (users otherwise come from Django's admin)."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction


def user_set_password(*, username: str, password: str, admin: bool = False):
    """Create the user if there is none by that name, and give it ``password``; returns
    (user, created). ``admin`` also makes it staff and superuser (the demo user's /admin/)."""
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(username=username)
        user.set_password(password)
        if admin:
            user.is_staff = user.is_superuser = True
        user.save()
    return user, created
