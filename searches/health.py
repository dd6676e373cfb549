"""/healthz, /readyz and /metrics for probes and Prometheus.

Served by a middleware placed first, so a probe that names the pod's address as its Host
(not in ALLOWED_HOSTS) or speaks plain HTTP behind TLS still gets its answer.

- ``/healthz``: the process answers (no dependency is asked).
- ``/readyz``: the database, Redis and the file storage answer; 503 naming what did not.
- ``/metrics``: Prometheus text. Allowed with ``Authorization: Bearer <METRICS_TOKEN>`` or
  from an address in ``METRICS_ALLOWED_NETWORKS`` (default: loopback only); else 403.
"""
from __future__ import annotations

import hmac
import ipaddress
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from . import selectors_metrics as reads

REGISTRY = CollectorRegistry()
PUSH_LATENCY = Histogram(
    "nasweb_push_latency_seconds", "From a worker publishing an epoch to this web process sending it to a page",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY)


def observe_push(sent_at) -> None:
    """Record one pushed epoch event (``sent_at``: the publisher's time.time())."""
    if isinstance(sent_at, (int, float)):
        PUSH_LATENCY.observe(max(0.0, time.time() - sent_at))


def _redis():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=3, socket_connect_timeout=3)


class StateCollector:
    """Reads Postgres and the broker at each scrape: nothing is kept between scrapes."""

    def collect(self):
        searches = GaugeMetricFamily("nasweb_searches", "Searches by state", labels=["state"])
        for state, n in reads.searches_by_state().items():
            searches.add_metric([state], n)
        candidates = GaugeMetricFamily("nasweb_candidates", "Candidates by state", labels=["state"])
        for state, n in reads.candidates_by_state().items():
            candidates.add_metric([state], n)
        epochs = GaugeMetricFamily("nasweb_epochs_recorded", "Epochs recorded, over the searches that exist")
        epochs.add_metric([], reads.epochs_recorded())
        age = GaugeMetricFamily("nasweb_worker_heartbeat_age_seconds", "Seconds since a training worker's "
                                "last heartbeat", labels=["worker"])
        busy = GaugeMetricFamily("nasweb_worker_busy", "1 while the worker trains a candidate", labels=["worker"])
        for name, seconds, is_busy in reads.worker_heartbeats():
            age.add_metric([name], seconds)
            busy.add_metric([name], int(is_busy))
        queues = GaugeMetricFamily("nasweb_queue_length", "Messages waiting in a Celery queue", labels=["queue"])
        client = _redis()
        try:
            for queue, n in reads.queue_lengths(client).items():
                queues.add_metric([queue], n)
        finally:
            client.close()
        yield from (searches, candidates, epochs, age, busy, queues)


REGISTRY.register(StateCollector())


def metrics_allowed(request) -> tuple[bool, str]:
    token = getattr(settings, "METRICS_TOKEN", "")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True, ""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "").split("%")[0])
    except ValueError:
        address = None
    if address is not None and any(address in net for net in allowed_networks()):
        return True, ""
    return False, ("Metrics need 'Authorization: Bearer <METRICS_TOKEN>' or a client address in "
                   "METRICS_ALLOWED_NETWORKS.")


def allowed_networks():
    text = getattr(settings, "METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    from . import storage

    checks = {"database": reads.database_answers, "redis": lambda: _redis().ping(), "storage": storage.check}
    results, ready = {}, True
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which and why
            results[name] = f"{type(exc).__name__}: {exc}"[:300]
            ready = False
    return JsonResponse({"ready": ready, "checks": results}, status=200 if ready else 503)


def metrics(request):
    allowed, why = metrics_allowed(request)
    if not allowed:
        return HttpResponse(why, status=403, content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


ROUTES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class HealthMiddleware:
    """Answers the three endpoints before host checks, redirects and sessions."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = ROUTES.get(request.path_info.rstrip("/") or "/")
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
