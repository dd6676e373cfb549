"""Settings for bench/device_check.sh on a bare GPU machine: the real settings without the
apps only the web front needs (daphne's Twisted server, the Swagger UI files), so fewer
wheels travel. The worker path is untouched: Postgres, the Redis channel layer, Celery's app."""
from nasweb.settings import *  # noqa: F401,F403
from nasweb.settings import INSTALLED_APPS

INSTALLED_APPS = [a for a in INSTALLED_APPS if a not in ("daphne", "drf_spectacular_sidecar")]
