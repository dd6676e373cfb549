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


def _fail(client, username, count, **headers):
    for _ in range(count):
        response = client.post(reverse("login"), {"username": username, "password": "wrong"}, **headers)
        assert response.status_code in (200, 429)


def _log_in_status(client, username, **headers):
    return client.post(reverse("login"), {"username": username, "password": "correct horse battery"},
                       **headers).status_code


def test_made_up_names_from_one_address_do_not_lock_real_users_out(client, alice, bob, settings):
    """Attack 1: spraying made-up names fills the per-address count; alice and bob, who
    never failed, still log in from that address with their right passwords."""
    settings.LOGIN_FAILURES_PER_ADDRESS = 30
    for i in range(30):
        client.post(reverse("login"), {"username": f"nobody{i}", "password": "wrong"})
    assert client.post(reverse("login"), {"username": "nobody99", "password": "wrong"}).status_code == 429
    assert _log_in_status(client, "alice") == 302
    client.logout()
    assert _log_in_status(client, "bob") == 302


def test_past_the_address_limit_a_name_gets_one_wrong_try(client, alice, settings):
    """The address limit still holds for the sprayer: a failing name is refused at once,
    and then even its right password waits."""
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    _fail(client, "nobody", 3)
    assert client.post(reverse("login"), {"username": "alice", "password": "wrong"}).status_code == 429
    assert _log_in_status(client, "alice") == 429
    assert "_auth_user_id" not in client.session


def test_behind_the_proxy_each_client_counts_on_its_own_address(client, alice, settings):
    """Attack 2: behind the TLS proxy every request comes from the proxy's address. The
    limits count the address the proxy forwards, so an attacker guessing alice's
    password is paused while alice, elsewhere, logs in."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_FAILURES_PER_USER = 3
    attacker = {"HTTP_X_FORWARDED_FOR": "203.0.113.7", "REMOTE_ADDR": "10.0.0.2"}
    _fail(client, "alice", 3, **attacker)
    assert _log_in_status(client, "alice", **attacker) == 429
    assert _log_in_status(client, "alice", HTTP_X_FORWARDED_FOR="198.51.100.4", REMOTE_ADDR="10.0.0.2") == 302


def test_a_client_cannot_choose_its_address_by_sending_x_forwarded_for(client, alice, settings):
    """The proxy appends the address it saw; what the client wrote to the left of it is
    not trusted, so rotating a made-up header does not reset the count."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_FAILURES_PER_USER = 3
    for i in range(3):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"},
                    HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.7")
    assert _log_in_status(client, "alice", HTTP_X_FORWARDED_FOR="192.0.2.200, 203.0.113.7") == 429


def test_without_a_proxy_x_forwarded_for_is_ignored(client, alice, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    settings.LOGIN_FAILURES_PER_USER = 3
    for i in range(3):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert _log_in_status(client, "alice", HTTP_X_FORWARDED_FOR="192.0.2.99") == 429


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
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="nasweb.settings", DEBUG="false", SECRET_KEY="s" * 60)
    code = "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT)"
    result = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "True", "True"]
