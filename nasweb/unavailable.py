"""Redis (broker, cache, channel layer) out of reach: a 503 with a reason, never a traceback.

Postgres is the truth and Redis carries messages, so most pages work without it; the
requests that do need it (log-in limits, starting work a worker must hear about) answer
503 "unavailable, try again" here instead of a 500.
"""
from __future__ import annotations

import logging

import redis.exceptions
from django.http import JsonResponse
from django.shortcuts import render
from kombu.exceptions import OperationalError as BrokerError

log = logging.getLogger(__name__)

SERVICE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, BrokerError,
                  ConnectionError, TimeoutError)
RETRY_AFTER_SECONDS = 10
DEFAULT_REASON = "A service NASWeb needs (Redis) cannot be reached right now. Try again shortly."


def unavailable_response(request, reason: str = DEFAULT_REASON):
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse({"detail": reason}, status=503)
    else:
        response = render(request, "503.html", {"reason": reason}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class ServiceUnavailableMiddleware:
    """Turns a Redis or broker error that escaped a view into a 503 page or JSON body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, SERVICE_ERRORS):
            log.warning("%s %s: service unavailable: %r", request.method, request.path, exception)
            return unavailable_response(request)
        return None
