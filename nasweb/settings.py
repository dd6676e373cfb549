"""Django settings, every deploy-dependent value read from the environment.

.env.example lists each variable with its default; the defaults suit a
developer's machine with the local Postgres and Redis.
"""
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DEBUG", True)
DEV_SECRET_KEY = "dev-only-insecure-key-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
# Keys that are published (here, in deploy files) sign nobody's sessions in production.
PLACEHOLDER_SECRET_KEYS = {"", DEV_SECRET_KEY, "change-me-in-production", "change-me-to-a-long-random-string"}
if not DEBUG and (SECRET_KEY.strip() in PLACEHOLDER_SECRET_KEYS or "change-me" in SECRET_KEY.lower()):
    raise ImproperlyConfigured("DEBUG is false but SECRET_KEY is unset or a published placeholder: "
                               "set SECRET_KEY to a long random value (python -c 'import secrets; "
                               "print(secrets.token_urlsafe(50))').")
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/root"), conn_max_age=0),
}
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHECKPOINT_DIR = Path(os.environ.get("CHECKPOINT_DIR", BASE_DIR / "var" / "checkpoints"))
DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / "var" / "data"))
# Object storage (searches/storage.py): empty keeps every file on the local disk (CHECKPOINT_DIR,
# DATA_DIR); an S3-compatible bucket, e.g. s3://bucket/prefix?endpoint=http://minio:9000&region=us-east-1,
# holds checkpoints, bundles and uploaded data sets so workers on other hosts need no shared disk.
# Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (boto3 reads them).
STORAGE_URL = os.environ.get("STORAGE_URL", "").strip()
# Downloads from the bucket: "stream" (through the web process, in chunks) or "redirect" (a presigned URL).
STORAGE_DOWNLOADS = os.environ.get("STORAGE_DOWNLOADS", "stream").strip().lower()
STORAGE_PRESIGN_SECONDS = int(os.environ.get("STORAGE_PRESIGN_SECONDS", 300))
# /metrics (searches/health.py): a bearer token, and/or client networks allowed without one.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = os.environ.get("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# Data sets users upload (searches/uploads.py): the most an archive or text file may hold,
# checked on the declared sizes and again on the bytes actually extracted.
UPLOAD_MAX_BYTES = int(os.environ.get("UPLOAD_MAX_BYTES", 200 * 1024 * 1024))
UPLOAD_MAX_FILES = int(os.environ.get("UPLOAD_MAX_FILES", 20000))
UPLOAD_MAX_IMAGE_PIXELS = int(os.environ.get("UPLOAD_MAX_IMAGE_PIXELS", 4096 * 4096))
# Image-folder data sets are resized to this many pixels a side for training.
IMAGE_FOLDER_SIDE = int(os.environ.get("IMAGE_FOLDER_SIDE", 32))
# Larger request bodies stream to a temporary file, never into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from here: no CDN at run time
    "searches.apps.SearchesConfig",
    "workers.apps.WorkersConfig",
]

MIDDLEWARE = [
    "searches.health.HealthMiddleware",  # /healthz, /readyz, /metrics: before host checks and redirects
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "nasweb.middleware.ContentSecurityPolicyMiddleware",
    "nasweb.unavailable.ServiceUnavailableMiddleware",
]

ROOT_URLCONF = "nasweb.urls"
ASGI_APPLICATION = "nasweb.asgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "search_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "var" / "staticfiles"))
WHITENOISE_USE_FINDERS = True  # serve from static/ without collectstatic in development
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

def storage_backend(url: str, checkpoint_dir: Path) -> dict:
    """The STORAGES entry for STORAGE_URL: django-storages' S3 backend, or the local disk."""
    from urllib.parse import parse_qs, urlsplit

    if not url:
        return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(checkpoint_dir)}}
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"STORAGE_URL must look like s3://bucket/prefix?endpoint=...; got {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    options = {"bucket_name": parts.netloc, "location": parts.path.strip("/"), "file_overwrite": True,
               # None: boto3 looks further (instance role, ~/.aws); the environment wins when set.
               "access_key": os.environ.get("AWS_ACCESS_KEY_ID") or None,
               "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
               "default_acl": None, "querystring_expire": STORAGE_PRESIGN_SECONDS,
               "region_name": query.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
    if query.get("endpoint"):
        options["endpoint_url"] = query["endpoint"]
    if query.get("addressing_style"):
        options["addressing_style"] = query["addressing_style"]
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "nasweb": storage_backend(STORAGE_URL, CHECKPOINT_DIR),
}


def channel_host(url: str) -> dict:
    # No socket timeout: channels_redis blocks up to 5 s waiting for a message, and
    # redis-py 8's default 5 s timeout would end every websocket idle that long.
    # A pooled connection that went stale (Redis restarted) is replaced on the spot:
    # redis-py's asyncio client retries nothing by default, so the first handshake after
    # a restart used to fail.
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return {"address": url, "socket_timeout": None, "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            "retry_on_error": [RedisConnectionError]}


CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [channel_host(REDIS_URL)], "capacity": 1000, "prefix": os.environ.get("CHANNEL_PREFIX", "nasweb")},
    },
}

# Celery reads every CELERY_* setting (see nasweb/celery.py).
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ROUTES = {
    "workers.tasks.advance_search": {"queue": "control"},
    "workers.tasks.train_candidate": {"queue": "gpu"},
    # Bundles run on the light queue: they must not wait behind hours of training.
    "workers.tasks.build_bundle": {"queue": "control"},
    "workers.tasks.reap_stale": {"queue": "control"},
}
# A training worker silent for this long is lost; its candidate goes back to the queue.
HEARTBEAT_TIMEOUT_SECONDS = float(os.environ.get("HEARTBEAT_TIMEOUT_SECONDS", 60))
CELERY_BEAT_SCHEDULE = {
    "reap-stale-candidates": {"task": "workers.tasks.reap_stale", "schedule": 10.0,
                              "options": {"queue": "control", "expires": 10}},
}
# Celery beat's state file (beat adds its own suffix, e.g. ".dat"); its folder is made below.
CELERY_BEAT_SCHEDULE_FILENAME = os.environ.get("BEAT_SCHEDULE_FILE", str(BASE_DIR / "var" / "celerybeat-schedule"))
# A candidate longer than this is stopped and marked failed.
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CANDIDATE_TIME_LIMIT", 6 * 3600))
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
# Tests run tasks in real worker processes; eager mode only where a caller asks for it.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "KEY_PREFIX": os.environ.get("CHANNEL_PREFIX", "nasweb")}}
LOGIN_FAILURES_PER_USER = int(os.environ.get("LOGIN_FAILURES_PER_USER", 5))
LOGIN_FAILURES_PER_ADDRESS = int(os.environ.get("LOGIN_FAILURES_PER_ADDRESS", 30))

# Production hardening: on unless DEBUG; behind a TLS proxy set SECURE_PROXY_SSL_HEADER's env.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 0 if DEBUG else 3600))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Proxies in front of the app that append to X-Forwarded-For: the log-in limits count the
# address the outermost of them saw (nasweb/auth.py), never what a client wrote there.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", 1 if BEHIND_TLS_PROXY else 0))
# Pages load scripts and styles from this site only: no inline script, no inline handler.
CONTENT_SECURITY_POLICY = os.environ.get(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# REST API (searches/api): personal tokens or the browser session; JSON only.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "searches.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["searches.api.parsers.StrictJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "searches.api.negotiation.JsonOnlyNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "searches.api.views.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "NASWeb API",
    "DESCRIPTION": "Searches, candidates, model bundles, exports and workers. "
                   "Authenticate with a personal token: `Authorization: Bearer <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"SearchStateEnum": "searches.models.Search.State",
                            "CandidateStateEnum": "searches.models.Candidate.State",
                            "BundleStateEnum": "searches.models.Bundle.State"},
}


def ensure_dirs(*paths) -> None:
    """Folders every process writes to, made at start so that none of them dies on a
    missing ``var/`` (beat's schedule, checkpoints, data sets; whitenoise warns on every
    request without STATIC_ROOT)."""
    for path in paths:
        Path(path).mkdir(parents=True, exist_ok=True)


ensure_dirs(STATIC_ROOT, CHECKPOINT_DIR, DATA_DIR, Path(CELERY_BEAT_SCHEDULE_FILENAME).parent)
