"""Where checkpoints, bundles and uploaded data sets live: the one seam to the file store.

By default (``STORAGE_URL`` empty) a file stays where its worker wrote it on the local
disk, and the row keeps its absolute path, as it always did. With ``STORAGE_URL`` naming
an S3-compatible bucket, a worker writes locally, puts the file into the bucket through
Django's storage API (django-storages' S3 backend, ``STORAGES["nasweb"]``) and the row
keeps a reference ``storage:<name>``; any web process or worker on any host reads it back
from there. No shared filesystem is needed.

Downloads never read a whole file into the web process: a file or object goes out in
1 MiB chunks (under ASGI through an asynchronous iterator: Django reads a synchronous one
to the end before it sends a byte), or, with ``STORAGE_DOWNLOADS=redirect``, as a redirect
to a presigned URL the browser fetches from the bucket itself.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files import File
from django.core.handlers.asgi import ASGIRequest
from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpResponseRedirect, StreamingHttpResponse

PREFIX = "storage:"
CHUNK = 1 << 20


def remote() -> bool:
    """True when files go to a bucket rather than staying on the local disk."""
    return bool(getattr(settings, "STORAGE_URL", ""))


def backend():
    return storages["nasweb"]


def is_stored(ref: str) -> bool:
    return bool(ref) and ref.startswith(PREFIX)


def _name(ref: str) -> str:
    return ref[len(PREFIX):]


def put(local: Path, name: str) -> str:
    """Keep the finished local file ``local``; returns the reference to save on the row.

    Local storage: the file stays where it is and the reference is its path. A bucket: the
    file is uploaded as ``name`` (overwriting an earlier object of that name) and removed
    from the local disk.
    """
    local = Path(local)
    if not remote():
        return str(local)
    with open(local, "rb") as handle:
        saved = backend().save(name, File(handle, name=os.path.basename(name)))
    local.unlink(missing_ok=True)
    return PREFIX + saved


def exists(ref: str) -> bool:
    if not ref:
        return False
    if is_stored(ref):
        return backend().exists(_name(ref))
    return Path(ref).is_file()


def size(ref: str) -> int:
    return backend().size(_name(ref)) if is_stored(ref) else Path(ref).stat().st_size


def delete(ref: str) -> None:
    """Remove the file or object; a missing one is not an error."""
    if not ref:
        return
    try:
        if is_stored(ref):
            backend().delete(_name(ref))
        else:
            Path(ref).unlink(missing_ok=True)
    except OSError:
        pass


def _cache_root() -> Path:
    return Path(settings.CHECKPOINT_DIR) / ".storage-cache"


def fetch(ref: str) -> Path:
    """A local path holding the file of ``ref`` (downloaded once into a cache on this host).

    Raises FileNotFoundError when the file or object is not there.
    """
    if not is_stored(ref):
        path = Path(ref)
        if not path.is_file():
            raise FileNotFoundError(ref)
        return path
    name = _name(ref)
    target = _cache_root() / name
    if target.is_file() and target.stat().st_size == size(ref):
        return target
    if not backend().exists(name):
        raise FileNotFoundError(ref)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in _chunks(name):
                out.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _object(name: str):
    store = backend()
    return store.bucket.Object(store._normalize_name(name))


def _chunks(name: str):
    body = _object(name).get()["Body"]
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def download_response(ref: str, filename: str, content_type: str = "application/octet-stream",
                      missing: str = "The file is gone from the storage.", request=None):
    """An attachment response for ``ref`` that never holds the whole file in memory.
    Pass the ``request`` so that under ASGI the chunks go out through an async iterator."""
    if not ref or not exists(ref):
        raise Http404(missing)
    asgi = isinstance(getattr(request, "_request", request), ASGIRequest)
    disposition = f'attachment; filename="{filename}"'
    if not is_stored(ref):
        if not asgi:
            return FileResponse(open(ref, "rb"), as_attachment=True, filename=filename, content_type=content_type)
        chunks = _file_chunks(ref)
    elif settings.STORAGE_DOWNLOADS == "redirect":
        url = backend().url(_name(ref), parameters={"ResponseContentDisposition": disposition,
                                                    "ResponseContentType": content_type},
                            expire=settings.STORAGE_PRESIGN_SECONDS)
        return HttpResponseRedirect(url)
    else:
        chunks = _chunks(_name(ref))
    response = StreamingHttpResponse(_async_chunks(chunks) if asgi else chunks, content_type=content_type)
    response["Content-Length"] = str(size(ref))
    response["Content-Disposition"] = disposition
    return response


def _file_chunks(path: str):
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


async def _async_chunks(chunks):
    # Each blocking read runs in a worker thread; the event loop only forwards the bytes.
    done = object()
    try:
        while True:
            chunk = await sync_to_async(next, thread_sensitive=False)(chunks, done)
            if chunk is done:
                return
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=False)()


# --- folders: uploaded data sets -------------------------------------------------

def upload_name(owner_id: int, dataset_name: str) -> str:
    """The bucket folder of a user's uploaded data set."""
    return f"uploads/{int(owner_id)}/{dataset_name}"


def put_folder(local: Path, name: str) -> int:
    """Copy every file under ``local`` into the bucket under ``name/``; returns the count.
    Local storage: nothing to do (the folder is already where readers look)."""
    if not remote():
        return 0
    count = 0
    for path in sorted(Path(local).rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                backend().save(f"{name}/{path.relative_to(local).as_posix()}", File(handle, name=path.name))
            count += 1
    return count


def fetch_folder(name: str, local: Path) -> bool:
    """Make ``local`` hold the bucket's folder ``name/`` when it is missing on this host.
    Returns True when ``local`` is there afterwards."""
    local = Path(local)
    if local.is_dir() or not remote():
        return local.is_dir()
    store = backend()
    prefix = store._normalize_name(name).rstrip("/") + "/"
    keys = [obj.key for obj in store.bucket.objects.filter(Prefix=prefix)]
    if not keys:
        return False
    work = Path(tempfile.mkdtemp(prefix=f".{local.name}.", dir=_ensure(local.parent)))
    try:
        for key in keys:
            target = work / key[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            store.bucket.download_file(key, str(target))
        os.replace(work, local)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return True


def delete_folder(name: str) -> None:
    if remote():
        store = backend()
        store.bucket.objects.filter(Prefix=store._normalize_name(name).rstrip("/") + "/").delete()


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def check() -> None:
    """Raise when the storage does not answer (for /readyz)."""
    if remote():
        store = backend()
        store.connection.meta.client.head_bucket(Bucket=store.bucket_name)
    else:
        root = Path(settings.CHECKPOINT_DIR)
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK):
            raise OSError(f"{root} is not writable")
