"""Data sets users upload: check and keep, delete."""
from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .. import storage, uploads
from ..models import Dataset, Search


# --- data sets users upload ------------------------------------------------------

def _uploads_root():

    return Path(settings.DATA_DIR) / "uploads"


def dataset_upload(*, owner, name: str, upload):
    """Check an uploaded data set (an image-folder ``.zip`` or a ``.csv``/``.jsonl`` text table)
    and keep it for ``owner`` under ``DATA_DIR/uploads/<owner id>/<name>/``.

    Returns the ready ``Dataset``. A refusal raises ValidationError with the reason; when
    the file itself is at fault the attempt is also kept as a failed row (reason, no files),
    so the owner's list says what went wrong. Nothing is ever left on disk by a refusal.
    """


    name = str(name or "").strip()
    if not uploads.NAME.match(name):
        raise ValidationError({"name": "Name the data set with up to 64 letters, digits, '-', '_' or '.', "
                                       "starting with a letter or digit."})
    if Dataset.objects.filter(owner=owner, name=name, state=Dataset.State.READY).exists():
        raise ValidationError({"name": f"You already have a data set named {name!r}; delete it or choose "
                                       f"another name."})
    filename = str(getattr(upload, "name", "") or "")
    max_bytes = int(settings.UPLOAD_MAX_BYTES)

    def refuse(message: str):
        kind = Dataset.Kind.TEXT if filename.lower().endswith(uploads.TEXT_SUFFIXES) else Dataset.Kind.IMAGE_FOLDER
        Dataset.objects.create(owner=owner, name=name, kind=kind, state=Dataset.State.FAILED,
                               message=message[:2000], size=int(getattr(upload, "size", 0) or 0))
        raise ValidationError({"file": message})

    if upload is None:
        raise ValidationError({"file": "Choose a file to upload."})
    if (getattr(upload, "size", 0) or 0) > max_bytes:
        refuse(f"The file is {upload.size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB.")
    dest = _uploads_root() / str(int(owner.pk)) / name
    try:
        checked = uploads.store_upload(upload, filename, dest, max_bytes=max_bytes,
                                       max_files=int(settings.UPLOAD_MAX_FILES),
                                       max_pixels=int(settings.UPLOAD_MAX_IMAGE_PIXELS))
    except uploads.UploadError as exc:
        refuse(str(exc))
    stored = storage.upload_name(owner.pk, name)
    try:
        storage.put_folder(dest, stored)  # a bucket: for workers on other hosts
        with transaction.atomic():
            return Dataset.objects.create(
                owner=owner, name=name, kind=checked.kind, path=str(dest), size=checked.size,
                num_examples=checked.num_examples, num_classes=len(checked.class_names),
                class_names=list(checked.class_names), state=Dataset.State.READY)
    except IntegrityError:
        shutil.rmtree(dest, ignore_errors=True)  # the same name won a race meanwhile
        storage.delete_folder(stored)
        raise ValidationError({"name": f"You already have a data set named {name!r}."}) from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        storage.delete_folder(stored)
        raise


def dataset_delete(dataset) -> None:
    """Delete an uploaded data set and, once that commits, its files. Refused while a search
    that has not ended still trains on it."""
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        busy = Search.objects.filter(dataset=dataset.catalog_name,
                                     state__in=Search.ACTIVE_STATES + (Search.State.PAUSED,))
        if busy.exists():
            raise ValidationError(f"The search {busy.first().name!r} still uses this data set; cancel it or "
                                  f"wait for it to end first.")
        path = Path(dataset.path) if dataset.path else None
        if dataset.state == Dataset.State.READY:
            stored = storage.upload_name(dataset.owner_id, dataset.name)
            transaction.on_commit(lambda: storage.delete_folder(stored))
        dataset.delete()
        root = _uploads_root().resolve()
        if path is not None and root in path.resolve().parents:  # never remove anything outside the uploads
            transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))
