"""Log-in with a limit on failed attempts, counted in the cache (Redis).

Two counts, both per client address (behind the TLS proxy, the address the
proxy forwards, not the proxy's own):

- per address and user name: stops password guessing against one account;
  past it even the right password waits.
- per address: stops spraying many accounts. Past it a name that already
  failed from this address waits, but the right password for a name with no
  recent failure from here still logs in, so made-up names cannot lock
  everyone sharing an address (an office, a NAT) out.

When the cache cannot be reached the limits cannot be kept: log-in answers
503 with a reason rather than letting guesses through uncounted.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache

from .unavailable import SERVICE_ERRORS, unavailable_response

log = logging.getLogger(__name__)
WINDOW_SECONDS = 300


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or behind ``TRUSTED_PROXY_COUNT`` proxies
    the entry of X-Forwarded-For that the outermost trusted proxy appended.
    Entries further left are the client's own claims and are never trusted."""
    proxies = settings.TRUSTED_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR") or "unknown"
    if proxies <= 0:
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    if len(forwarded) < proxies:
        return remote  # not through the proxy chain: the connection's address is all we know
    return forwarded[-proxies][:64]


def _keys(request) -> tuple[str, str]:
    address = client_address(request)
    username = (request.POST.get("username") or "").strip().lower()[:150]
    return f"login-failures:{address}:{username}", f"login-failures:{address}"


def _count(key: str) -> int:
    return cache.get(key) or 0


class RateLimitedLoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        try:
            return self._limited_post(request, *args, **kwargs)
        except SERVICE_ERRORS as exc:
            log.warning("log-in refused, the cache is unreachable: %s", exc)
            return unavailable_response(request, "Log-in is unavailable for a moment (Redis cannot be "
                                                 "reached). Try again shortly.")

    def _limited_post(self, request, *args, **kwargs):
        user_key, address_key = _keys(request)
        user_failures = _count(user_key)
        if user_failures >= settings.LOGIN_FAILURES_PER_USER:
            return self._refused()
        if _count(address_key) >= settings.LOGIN_FAILURES_PER_ADDRESS:
            # Spraying from this address: only a name with no recent failure from
            # here gets one more try, and only the right password passes.
            form = self.get_form()
            if user_failures == 0 and form.is_valid():
                return self.form_valid(form)
            self._record_failure(user_key, address_key)
            return self._refused()
        return super().post(request, *args, **kwargs)

    def _refused(self):
        # Bound to the name alone: the refusal checks no password.
        form = self.form_class(self.request, data={"username": self.request.POST.get("username", "")})
        form.add_error(None, f"Too many failed log-ins. Wait {WINDOW_SECONDS // 60} minutes and try again.")
        return self.render_to_response(self.get_context_data(form=form), status=429)

    @staticmethod
    def _record_failure(*keys):
        for key in keys:
            cache.add(key, 0, WINDOW_SECONDS)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, WINDOW_SECONDS)

    def form_invalid(self, form):
        self._record_failure(*_keys(self.request))
        return super().form_invalid(form)
