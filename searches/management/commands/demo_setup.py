"""Create (or refresh) the demo account and its first search.

Safe to run again: the user "demo" keeps its searches, gets a new password
each run (printed), and gets a demo search only while it has none.
"""
import secrets
import string

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_SEARCH = {
    "name": "Demo: digits, chain space, random search",
    "dataset": "digits",
    "space": "chain",
    "strategy": "random",
    "max_candidates": 8,
    "epochs": 5,
    "parallel": 2,
}


class Command(BaseCommand):
    help = "Create the demo user (printing a new password) and, if it has none, one small demo search."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", help="use this password instead of generating one")
        parser.add_argument("--no-search", action="store_true", help="do not create the demo search")

    def handle(self, *args, username, password, no_search, **options):
        from searches.models import Search
        from searches.services import search_create

        password = password or "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(username=username)
            user.set_password(password)
            user.is_staff = user.is_superuser = True  # the demo's admin pages (/admin/) are its own
            user.save()
            search = None
            if not no_search and not Search.objects.filter(owner=user).exists():
                # The controller task is enqueued when this transaction commits.
                search = search_create(owner=user, **DEMO_SEARCH)

        self.stdout.write(f"{'created' if created else 'reset the password of'} user {username!r}")
        if search is not None:
            self.stdout.write(f"created search #{search.pk}: {search.name}")
        self.stdout.write(f"user: {username}")
        self.stdout.write(f"password: {password}")
