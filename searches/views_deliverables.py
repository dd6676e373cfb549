"""Pages for the deliverables: model bundles (build, progress, download), data exports and
personal API tokens. Ownership through selectors, every write through services."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import exports, selectors, services, storage


def _back(request, fallback: str):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(fallback)


def _request_bundle(request, candidate):
    try:
        bundle = services.bundle_request(candidate, rebuild=request.POST.get("rebuild") == "1")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if bundle.state == bundle.State.READY:
            messages.info(request, "The bundle is ready.")
        else:
            messages.info(request, "Building the model bundle: progress shows below.")
    return _back(request, candidate.search.get_absolute_url())


@login_required
@require_POST
def bundle_request(request, search_id: int, candidate_id: int):
    return _request_bundle(request, selectors.candidate_get_for(request.user, search_id, candidate_id))


@login_required
@require_POST
def best_bundle_request(request, search_id: int):
    return _request_bundle(request, selectors.best_candidate_for(request.user, search_id))


@login_required
@require_GET
def bundle_status(request, search_id: int, candidate_id: int):
    """The bundle's state for the page's progress bar, with the panel to swap in when it ends."""
    candidate = selectors.candidate_get_for(request.user, search_id, candidate_id)
    bundle = selectors.bundle_of(candidate)
    html = render_to_string("deliverables/bundle_panel.html",
                            {"candidate": candidate, "next": request.GET.get("next", "")}, request=request)
    if bundle is None:
        return JsonResponse({"state": None, "progress": 0, "message": "", "html": html})
    return JsonResponse({"state": bundle.state, "progress": bundle.progress, "message": bundle.message,
                         "current": bundle.is_current, "html": html})


@login_required
@require_GET
def bundle_download(request, search_id: int, candidate_id: int):
    candidate = selectors.candidate_get_for(request.user, search_id, candidate_id)
    _, ref = selectors.ready_bundle_path(candidate)
    return storage.download_response(ref, f"search{candidate.search_id}-candidate{candidate.index}-bundle.zip",
                                     content_type="application/zip", request=request)


@login_required
@require_GET
def search_export(request, search_id: int, kind: str, fmt: str):
    search = selectors.search_get_for(request.user, search_id)
    if kind not in exports.KINDS or fmt not in exports.FORMATS:
        raise Http404("No such export.")
    return exports.export_response(request, search, kind, fmt)


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request):
    """List, create (the key is shown once, on this response) and revoke personal API tokens."""
    new_key, new_token, error, status = None, None, "", 200
    if request.method == "POST":
        try:
            new_token, new_key = services.api_token_create(owner=request.user, name=request.POST.get("name", ""))
        except ValidationError as exc:
            error, status = " ".join(exc.messages), 400
    return render(request, "deliverables/api_tokens.html", {
        "tokens": selectors.api_tokens_for(request.user), "new_key": new_key, "new_token": new_token,
        "error": error, "name": request.POST.get("name", "") if error else "",
        "api_base": request.build_absolute_uri(reverse("api-search-list")).rsplit("searches/", 1)[0],
        "site": request.build_absolute_uri("/").rstrip("/"),
    }, status=status)


@login_required
@require_POST
def api_token_revoke(request, token_id: int):
    token = selectors.api_token_get_for(request.user, token_id)
    services.api_token_revoke(token)
    messages.info(request, f"Token “{token.name}” is revoked.")
    return redirect("api_tokens")
