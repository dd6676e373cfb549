"""Checkpoints, bundles and uploaded data sets in an S3-compatible bucket (moto's real server
over HTTP), read back by the web and by workers that share no disk with it."""
import hashlib
import io
import shutil
import time
import urllib.request

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.urls import reverse
from s3server import S3Server

from searches import services, storage
from searches.datasets_catalog import upload_info
from searches.models import Bundle, Candidate, Search
from workers import datasets

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def s3(tmp_path, settings, monkeypatch):
    server = S3Server(tmp_path / "moto.log")
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    settings.STORAGE_URL = server.storage_url()
    settings.STORAGES = {**settings.STORAGES, "nasweb": settings_module().storage_backend(
        settings.STORAGE_URL, settings.CHECKPOINT_DIR)}
    yield server
    server.stop()


def settings_module():
    from nasweb import settings as module
    return module


def wait_until(check, timeout=240, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"no {what} after {timeout}s")


def test_the_local_disk_stays_the_default(settings, tmp_path):
    settings.STORAGE_URL = ""
    path = tmp_path / "a.pt"
    path.write_bytes(b"x")
    assert storage.put(path, "checkpoints/a.pt") == str(path) and path.is_file()
    assert storage.exists(str(path)) and storage.fetch(str(path)) == path


def test_a_bad_storage_url_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="s3://bucket"):
        settings_module().storage_backend("minio://x", "/tmp")


@pytest.mark.worker
def test_checkpoint_and_bundle_round_trip_through_the_bucket(s3, alice, client, settings, start_celery_worker,
                                                             checkpoint_dir):
    env = s3.env()
    start_celery_worker("control", "control", pool="threads", concurrency=2, env=env)
    start_celery_worker("gpu", "cpu0", env=env)
    search = services.search_create(owner=alice, name="s3", dataset="digits", space="chain",
                                    strategy="random", max_candidates=1, epochs=1, parallel=1, seed=3)
    wait_until(lambda: Search.objects.get(pk=search.pk).state in Search.ENDED_STATES, what="search end")
    candidate = Candidate.objects.get(search=search)
    assert candidate.state == Candidate.State.FINISHED, candidate.error
    name = f"candidate-0-a{candidate.attempt}.pt"  # named by its claim's attempt
    assert candidate.checkpoint_path == f"storage:checkpoints/search-{search.id}/{name}"
    assert s3.keys(f"nasweb/checkpoints/search-{search.id}/") == [f"nasweb/checkpoints/search-{search.id}/{name}"]
    assert not list(checkpoint_dir.rglob("*.pt"))  # the worker kept no copy: the bucket has it

    client.force_login(alice)
    url = reverse("candidate_checkpoint", args=[search.id, candidate.id])
    fetched_at = time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200 and isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content)
    print(f"checkpoint round trip: {candidate.checkpoint_path} {len(body)} bytes, sha256 "
          f"{candidate.checkpoint_sha256[:12]} matches, downloaded in {time.perf_counter() - fetched_at:.3f}s")
    assert hashlib.sha256(body).hexdigest() == candidate.checkpoint_sha256
    assert int(response["Content-Length"]) == len(body) == candidate.checkpoint_size
    assert torch.load(io.BytesIO(body), weights_only=True)["arch"] == candidate.arch

    settings.STORAGE_DOWNLOADS = "redirect"
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(s3.endpoint)
    with urllib.request.urlopen(response["Location"], timeout=30) as presigned:  # noqa: S310 - the test's server
        assert hashlib.sha256(presigned.read()).hexdigest() == candidate.checkpoint_sha256
        assert "attachment" in presigned.headers["Content-Disposition"]
    settings.STORAGE_DOWNLOADS = "stream"

    # A bundle: the control worker fetches the checkpoint from the bucket and puts the zip back.
    bundle = services.bundle_request(candidate)
    wait_until(lambda: Bundle.objects.get(pk=bundle.pk).state in (Bundle.State.READY, Bundle.State.FAILED),
               timeout=300, what="bundle")
    bundle.refresh_from_db()
    assert bundle.state == Bundle.State.READY, bundle.error
    assert bundle.path.startswith(f"storage:bundles/search-{search.id}/")
    response = client.get(reverse("bundle_download", args=[search.id, candidate.id]))
    zipped = b"".join(response.streaming_content)
    assert response.status_code == 200 and hashlib.sha256(zipped).hexdigest() == bundle.sha256
    # The control worker fetched the checkpoint and built the zip locally; neither stayed.
    assert not [p for p in checkpoint_dir.rglob("*") if p.suffix in (".pt", ".zip")]

    services.search_delete(search)
    assert s3.keys(f"nasweb/checkpoints/search-{search.id}/") == []
    assert s3.keys(f"nasweb/bundles/search-{search.id}/") == []


def test_downloads_stream_in_bounded_chunks(s3, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (4 * storage.CHUNK // 256 + 7))
    ref = storage.put(big, "checkpoints/big.bin")
    assert not big.exists() and storage.size(ref) == 4 * storage.CHUNK + 7 * 256
    response = storage.download_response(ref, "big.bin")
    sizes = [len(chunk) for chunk in response.streaming_content]
    assert len(sizes) >= 5 and max(sizes) <= storage.CHUNK
    assert storage.fetch(ref).read_bytes()[:256] == bytes(range(256))


def test_an_uploaded_data_set_reaches_a_worker_with_no_shared_disk(s3, alice, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "web-data"
    rows = "text,label\n" + "\n".join(f"row {i} about {'cats' if i % 2 else 'dogs'},{'cat' if i % 2 else 'dog'}"
                                       for i in range(12)) + "\n"
    dataset = services.dataset_upload(owner=alice, name="reviews",
                                      upload=SimpleUploadedFile("reviews.csv", rows.encode()))
    assert s3.keys(f"nasweb/uploads/{alice.pk}/reviews/") == [f"nasweb/uploads/{alice.pk}/reviews/data.csv"]

    shutil.rmtree(settings.DATA_DIR)  # the worker's host: another DATA_DIR, empty
    assert upload_info(dataset).availability() == (True, "")  # another web replica offers it too
    settings.DATA_DIR = tmp_path / "worker-data"
    kind, path = datasets.resolve(f"upload:{dataset.pk}", str(settings.DATA_DIR))
    assert kind == "text" and path.read_text() == rows
    assert settings.DATA_DIR in path.parents

    services.dataset_delete(dataset)
    assert s3.keys(f"nasweb/uploads/{alice.pk}/") == []


def test_a_missing_object_is_a_404_not_a_500(s3, alice, client):
    search = services.search_create(owner=alice, name="gone", dataset="digits", space="chain",
                                    strategy="random", max_candidates=1, epochs=1, parallel=1, seed=3)
    candidate = Candidate.objects.create(search=search, index=0, arch={}, arch_hash="x",
                                         state=Candidate.State.FINISHED,
                                         checkpoint_path="storage:checkpoints/nowhere.pt")
    client.force_login(alice)
    response = client.get(reverse("candidate_checkpoint", args=[search.id, candidate.id]))
    assert response.status_code == 404


@pytest.mark.parametrize("where", ["local", "bucket"])
def test_downloads_under_asgi_stream_through_an_async_iterator(where, request, alice, settings, tmp_path):
    """Django reads a synchronous iterator to the end before sending under ASGI (with a
    warning): a checkpoint must leave in chunks through an asynchronous one instead."""
    import asyncio
    import warnings

    from django.test import AsyncClient

    if where == "bucket":
        request.getfixturevalue("s3")
    else:
        settings.STORAGE_URL = ""
    big = tmp_path / "ckpt.pt"
    big.write_bytes(b"\x01" * (3 * storage.CHUNK + 5))
    ref = storage.put(big, "checkpoints/asgi/ckpt.pt")
    search = services.search_create(owner=alice, name="asgi", dataset="digits", space="chain",
                                    strategy="random", max_candidates=1, epochs=1, parallel=1, seed=3)
    candidate = Candidate.objects.create(search=search, index=0, arch={}, arch_hash="a",
                                         state=Candidate.State.FINISHED, checkpoint_path=ref)

    async def download():
        client = AsyncClient()
        await client.aforce_login(alice)
        response = await client.get(reverse("candidate_checkpoint", args=[search.id, candidate.id]))
        assert response.status_code == 200 and response.is_async
        return [chunk async for chunk in response.streaming_content]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunks = asyncio.run(download())
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]
    assert len(chunks) == 4 and max(len(c) for c in chunks) == storage.CHUNK
    assert sum(len(c) for c in chunks) == 3 * storage.CHUNK + 5
