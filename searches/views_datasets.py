"""Pages for the data sets users bring: the list with the upload form, one data set, delete.

Only the owner sees an upload (404 for anyone else). A refused upload answers 400 with
the reason on the form. The request body is read through an upload handler that stops
storing an oversized file at the limit, so a huge upload never fills the disk.
"""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import selectors, services
from .uploads import NAME, human_size


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="Letters, digits, '-', '_' or '.'; unique among your data sets.")
    file = forms.FileField(label="File", help_text="A .zip of image folders (one folder per class, PNG or JPEG), "
                                                   "or a UTF-8 .csv / .jsonl with the columns text and label.")

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not NAME.match(name):
            raise forms.ValidationError("Use up to 64 letters, digits, '-', '_' or '.', starting with a letter "
                                        "or digit.")
        return name


class LimitedUploadHandler(FileUploadHandler):
    """Notes an uploaded file larger than the limit and stops reading it (the rest of the
    body is drained, not stored)."""

    def __init__(self, request=None, limit: int = 0):
        super().__init__(request)
        self.limit = limit
        self.too_big = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit + 1024 * 1024:
            self.too_big = True

    def receive_data_chunk(self, raw_data, start):
        if self.too_big or start + len(raw_data) > self.limit:
            self.too_big = True
            raise StopUpload(connection_reset=False)
        return raw_data  # the next handler stores it

    def file_complete(self, file_size):
        return None


def _limit_mb() -> str:
    return human_size(int(settings.UPLOAD_MAX_BYTES))


def _list_page(request, form, status=200):
    return render(request, "datasets/dataset_list.html", {
        "form": form, "datasets": selectors.datasets_for(request.user),
        "disk": selectors.disk_datasets(), "limit": _limit_mb(),
    }, status=status)


@csrf_exempt  # the handler must be in place before CSRF reads the body; checked below instead
@login_required
@require_http_methods(["GET", "POST"])
def dataset_list(request):
    if request.method == "POST":
        handler = LimitedUploadHandler(request, int(settings.UPLOAD_MAX_BYTES))
        request.upload_handlers.insert(0, handler)
        return _dataset_upload(request, handler)
    return _list_page(request, DatasetUploadForm())


@csrf_protect
def _dataset_upload(request, handler):
    form = DatasetUploadForm(request.POST, request.FILES)
    if handler.too_big:
        form = DatasetUploadForm(request.POST)
        form.is_valid()
        form.errors["file"] = form.error_class([f"The file is larger than the limit of {_limit_mb()}."])
        return _list_page(request, form, status=400)
    if form.is_valid():
        try:
            dataset = services.dataset_upload(owner=request.user, name=form.cleaned_data["name"],
                                              upload=form.cleaned_data["file"])
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Data set {dataset.name!r} is ready: {dataset.num_examples:,} examples "
                                      f"in {dataset.num_classes} classes.")
            return redirect(dataset)
    return _list_page(request, form, status=400)


@login_required
@require_GET
def dataset_detail(request, dataset_id: int):
    dataset = selectors.dataset_get_for(request.user, dataset_id)
    return render(request, "datasets/dataset_detail.html", {
        "dataset": dataset, "searches": selectors.dataset_searches(dataset)})


@login_required
@require_POST
def dataset_delete(request, dataset_id: int):
    dataset = selectors.dataset_get_for(request.user, dataset_id)
    try:
        services.dataset_delete(dataset)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(dataset)
    messages.success(request, f"Deleted the data set {dataset.name!r}.")
    return redirect("dataset_list")
