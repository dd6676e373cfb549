"""Create (or refresh) the demo account and its first search.

Safe to run again: the user "demo" keeps its searches, gets a new password
each run (printed), and gets a demo search only while it has none.
"""
import secrets
import string

from django.core.management.base import BaseCommand
from django.db import transaction

from searches import selectors, services

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
        password = password or "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
        with transaction.atomic():
            user, created = services.user_set_password(username=username, password=password, admin=True)
            search = None
            if not no_search and not selectors.search_list_for(user).exists():
                # The controller task is enqueued when this transaction commits.
                search = services.search_create(owner=user, **DEMO_SEARCH)

        self.stdout.write(f"{'created' if created else 'reset the password of'} user {username!r}")
        if search is not None:
            self.stdout.write(f"created search #{search.pk}: {search.name}")
        self.stdout.write(f"user: {username}")
        self.stdout.write(f"password: {password}")
