"""Hardening (issue 14, item 8): a Content-Security-Policy the pages pass with no inline
script, upload refusals that never show server paths, and no production start with a
published SECRET_KEY."""
import html
import io
import os
import re
import subprocess
import sys
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from factories import make_search
from PIL import Image
from processes import ROOT

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def page_urls(search, candidate, other):
    return [reverse("search_list"), reverse("search_new"), search.url, reverse("search_delete", args=[search.id]),
            reverse("search_architectures", args=[search.id]), reverse("worker_list"), reverse("dataset_list"),
            reverse("api_tokens"), reverse("candidate_detail", args=[search.id, candidate.id]),
            f"{reverse('search_diff', args=[search.id])}?a={candidate.index}&b={other.index}"]


def test_every_page_has_a_policy_without_inline_script(client, alice, tmp_path):
    search, candidates = make_search(alice, tmp_path)
    responses = {"login": client.get(reverse("login"))}
    client.force_login(alice)
    for url in page_urls(search, candidates[0], candidates[1]):
        responses[url] = client.get(url)
    for url, response in responses.items():
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        body = response.content.decode()
        assert not INLINE_SCRIPT.search(body), f"{url}: inline <script> {INLINE_SCRIPT.search(body).group(0)}"
        assert not INLINE_HANDLER.search(body), f"{url}: inline handler {INLINE_HANDLER.search(body).group(0)}"


def test_the_api_docs_load_their_script_from_a_url(client, alice):
    client.force_login(alice)
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    body = response.content.decode()
    assert not INLINE_SCRIPT.search(body)


def _broken_image_zip() -> bytes:
    good = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(good, "PNG")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for c in ("cat", "dog"):
            for i in range(6):
                zf.writestr(f"{c}/{i}.png", good.getvalue())
        zf.writestr("dog/broken.png", b"this is no image at all")
    return buffer.getvalue()


def test_upload_refusals_do_not_show_server_paths(client, alice, tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    client.force_login(alice)
    response = client.post(reverse("dataset_list"), {"name": "broken", "file": SimpleUploadedFile(
        "set.zip", _broken_image_zip())})
    text = html.unescape(response.content.decode())
    assert response.status_code == 400 and "cannot be read as an image" in text
    assert str(tmp_path) not in text and "/uploads/" not in text
    assert "broken.png" in text  # the name the person knows is kept


@pytest.mark.parametrize("key", [None, "dev-only-insecure-key-change-me", "change-me-in-production",
                                 "change-me-to-a-long-random-string"])
def test_production_refuses_to_start_with_a_published_secret_key(key):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="nasweb.settings", DEBUG="false")
    env.pop("SECRET_KEY", None)
    if key is not None:
        env["SECRET_KEY"] = key
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); print('started')"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "started" not in result.stdout
    assert "SECRET_KEY" in result.stderr and "ImproperlyConfigured" in result.stderr


def test_development_starts_with_the_default_key():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="nasweb.settings", DEBUG="true")
    env.pop("SECRET_KEY", None)
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); print('started')"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "started" in result.stdout, result.stderr
