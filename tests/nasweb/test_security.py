"""Project-wide protections: log-in limits and production settings."""
import os
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.urls import reverse
from processes import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def test_repeated_failed_logins_are_refused_for_a_while(client, alice, settings):
    settings.LOGIN_FAILURES_PER_USER = 3
    for _ in range(3):
        assert client.post(reverse("login"), {"username": "alice", "password": "wrong"}).status_code == 200
    refused = client.post(reverse("login"), {"username": "alice", "password": "correct horse battery"})
    assert refused.status_code == 429
    assert "Too many failed log-ins" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # even the right password waits


def test_a_correct_login_is_not_limited(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(alice.id)


def test_check_deploy_with_production_settings_has_no_warnings():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="nasweb.settings", DEBUG="false",
               SECRET_KEY="x" * 20 + "production-secret-key-with-enough-entropy-0123456789",
               ALLOWED_HOSTS="nasweb.example.org", SECURE_HSTS_SECONDS="31536000",
               SECURE_HSTS_INCLUDE_SUBDOMAINS="true", SECURE_HSTS_PRELOAD="true")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_cookies_are_secure():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="nasweb.settings", DEBUG="false")
    code = "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT)"
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "True", "True"]
