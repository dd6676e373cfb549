"""Log-in with a limit on failed attempts, counted in the cache (Redis).

Counting per address and user name stops password guessing against one
account; the looser per-address count stops spraying many accounts.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache

WINDOW_SECONDS = 300


def _client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "unknown")


def _keys(request) -> list[tuple[str, int]]:
    address = _client_address(request)
    username = (request.POST.get("username") or "").strip().lower()[:150]
    return [(f"login-failures:{address}:{username}", settings.LOGIN_FAILURES_PER_USER),
            (f"login-failures:{address}", settings.LOGIN_FAILURES_PER_ADDRESS)]


class RateLimitedLoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        if any((cache.get(key) or 0) >= limit for key, limit in _keys(request)):
            form = self.get_form()
            form.add_error(None, f"Too many failed log-ins. Wait {WINDOW_SECONDS // 60} minutes and try again.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key, _ in _keys(self.request):
            cache.add(key, 0, WINDOW_SECONDS)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, WINDOW_SECONDS)
        return super().form_invalid(form)
