"""Settings for the test suite: the real Postgres and Redis, kept apart from a
running demo by a Redis database and channel prefix of their own."""
import os

from .settings import *  # noqa: F401,F403
from .settings import BASE_DIR, channel_host, storage_backend

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [channel_host(REDIS_URL)], "capacity": 1000, "prefix": os.environ.get("CHANNEL_PREFIX", "nasweb-test")},
    },
}
CELERY_BROKER_URL = REDIS_URL
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "KEY_PREFIX": os.environ.get("CHANNEL_PREFIX", "nasweb-test")}}
CHECKPOINT_DIR = __import__("pathlib").Path(os.environ.get("CHECKPOINT_DIR", BASE_DIR / "var" / "test-checkpoints"))
# Each concurrent test session (a developer's, CI's) may name its own test database.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DB_NAME", "test_nasweb")}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# Local storage (STORAGE_URL empty) roots the backend at the test checkpoint folder.
STORAGES = {**STORAGES, "nasweb": storage_backend(STORAGE_URL, CHECKPOINT_DIR)}  # noqa: F405
