"""Pages and downloads. Each view checks ownership through a selector and
changes state only through a service."""
from __future__ import annotations

from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import PRESETS, SearchForm


@login_required
def search_list(request):
    return render(request, "searches/search_list.html", {"searches": selectors.search_list_for(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def search_new(request):
    form = SearchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            search = services.search_create(owner=request.user, **form.service_kwargs())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            return redirect(search)
    # Reaching here with a bound form means it was refused: say so with a 400.
    return render(request, "searches/search_new.html", {"form": form, "presets": PRESETS},
                  status=400 if form.is_bound else 200)


@login_required
def search_detail(request, search_id: int):
    search = selectors.search_get_for(request.user, search_id)
    return render(request, "searches/search_detail.html", {"search": search, "best": selectors.best_candidate(search)})


@login_required
@require_POST
def search_cancel(request, search_id: int):
    search = selectors.search_get_for(request.user, search_id)
    services.search_cancel(search)
    messages.info(request, "The search is cancelled; running candidates stop at the end of their epoch.")
    return redirect(search)


def _checkpoint_response(candidate):
    path = Path(candidate.checkpoint_path) if candidate.checkpoint_path else None
    if path is None or not path.is_file():
        raise Http404("This candidate has no checkpoint.")
    filename = f"search{candidate.search_id}-candidate{candidate.index}.pt"
    return FileResponse(open(path, "rb"), as_attachment=True, filename=filename)


@login_required
def candidate_checkpoint(request, search_id: int, candidate_id: int):
    return _checkpoint_response(selectors.candidate_get_for(request.user, search_id, candidate_id))


@login_required
def best_checkpoint(request, search_id: int):
    search = selectors.search_get_for(request.user, search_id)
    best = selectors.best_candidate(search)
    if best is None:
        raise Http404("No candidate of this search has finished yet.")
    return _checkpoint_response(best)
