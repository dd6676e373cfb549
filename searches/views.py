"""Pages, JSON endpoints and downloads. Each view checks ownership through a selector and
changes state only through a service."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import forms as search_forms
from . import selectors, services, storage
from .forms import BASIC_FIELDS, PRESET_HELP, PRESETS, SearchForm
from .models import Candidate, Search

FREQUENCY_K_DEFAULT = 20
FREQUENCY_K_MAX = 1000


@login_required
def search_list(request):
    rows = selectors.search_list_rows(request.user)
    return render(request, "searches/search_list.html", {
        "searches": rows, "states": Search.State.values, "datasets": sorted({r["dataset"] for r in rows})})


def _clone_initial(search: Search, form: SearchForm) -> dict:
    """Form values that start a new search like ``search`` (the user may change any)."""
    initial = {}
    objectives = search.objectives or []
    for name in form.fields:
        if name == "name":
            initial[name] = f"Copy of {search.name}"[:200]
        elif name == "objective":
            presets = getattr(search_forms, "OBJECTIVES", {})
            initial[name] = next((key for key, (_, value) in presets.items() if value == objectives),
                                 search.objective)
        elif name == "latency_target_ms":
            reward = objectives[0] if len(objectives) == 1 and isinstance(objectives[0], dict) else {}
            if reward.get("reward"):
                initial[name] = reward.get("target")
        elif name == "warm_start":
            initial[name] = search.warm_start_id
        elif name in search.train_settings:
            initial[name] = search.train_settings[name]
        elif hasattr(search, name) and not callable(getattr(search, name)):
            initial[name] = getattr(search, name)
    return initial


def _form(request, data=None, initial=None) -> SearchForm:
    return SearchForm(data, initial=initial, user=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def search_new(request):
    clone_of = None
    if request.method == "GET" and request.GET.get("clone"):
        try:
            clone_of = selectors.search_get_for(request.user, int(request.GET["clone"]))
        except ValueError:
            raise Http404("No such search.") from None
    # An empty POST is still a submitted form: bind it so it is refused with messages.
    form = _form(request, request.POST if request.method == "POST" else None)
    if clone_of is not None:
        form = _form(request, initial=_clone_initial(clone_of, form))
    if request.method == "POST" and form.is_valid():
        try:
            search = services.search_create(owner=request.user, **form.service_kwargs())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            return redirect(search)
    # Reaching here with a bound form means it was refused: say so with a 400.
    info = selectors.search_form_info(request.user)
    return render(request, "searches/search_new.html", {
        "form": form, "presets": PRESETS, "preset_help": PRESET_HELP, "clone_of": clone_of, "form_info": info,
        "workers_online": info["workers_online"],
        "advanced_errors": any(name not in BASIC_FIELDS for name in form.errors)},
        status=400 if form.is_bound else 200)


def _space_info(search: Search) -> dict:
    space = selectors.space_of(search)
    return {
        "name": search.space,
        "settings": space.settings() if space else search.space_settings,
        "decisions": [{"name": d.name, "choices": list(d.choices)} for d in space.decisions] if space else [],
    }


@login_required
def search_detail(request, search_id: int):
    search = selectors.search_get_for(request.user, search_id)
    space = selectors.space_of(search)
    darts = selectors.darts_job(search)
    devices = selectors.search_devices(search)
    return render(request, "searches/search_detail.html", {
        "search": search, "best": selectors.best_candidate(search),
        "devices": devices, "devices_gpu": any(d.startswith("cuda") for d in devices),
        "workers_online": selectors.live_worker_count(),
        "running": selectors.running_candidates(search),
        "darts": darts, "darts_weights": (darts.extra.get("edge_weights") or [{}])[-1] if darts else {},
        "sorts": SORT_LABELS, "states": Candidate.State.values,
        "uses_options": selectors.uses_options(space) if space else [],
        "page_config": {
            "search_id": search.id, "page_size": selectors.LEADERBOARD_PAGE_SIZE, "top": selectors.TOP_CURVES,
            "max_selected": selectors.MAX_SELECTED,
            "multi_objective": len(search.objectives or []) >= 2,
            "urls": {
                "leaderboard": reverse("search_leaderboard", args=[search.id]),
                "curves": reverse("search_curves", args=[search.id]),
                "scatter": reverse("search_scatter", args=[search.id]),
                "candidate": reverse("candidate_detail", args=[search.id, 0]),
                "checkpoint": reverse("candidate_checkpoint", args=[search.id, 0]),
                "diff": reverse("search_diff", args=[search.id]),
                "list": reverse("search_list"),
            },
        },
    })


SORT_LABELS = [("-best", "Best val. accuracy"), ("-final", "Last val. accuracy"), ("-test", "Test accuracy"),
               ("params", "Fewest parameters"), ("flops", "Fewest FLOPs"), ("latency", "Lowest latency"),
               ("-epochs", "Most epochs"), ("index", "Oldest first"), ("-index", "Newest first")]


@login_required
@require_GET
def search_leaderboard(request, search_id: int):
    """One leaderboard page as JSON: ``sort``, ``state`` (repeatable), ``acc_min``/``acc_max``,
    ``params_min``/``params_max``, ``q`` (genotype text), ``uses`` (repeatable), ``page``."""
    search = selectors.search_get_for(request.user, search_id)
    return JsonResponse(selectors.leaderboard_page(search, selectors.LeaderboardQuery.from_params(request.GET)))


@login_required
@require_GET
def search_curves(request, search_id: int):
    """Whole curves of the candidates in ``ids`` (at most 50), for the ones a user selects."""
    search = selectors.search_get_for(request.user, search_id)
    return JsonResponse(selectors.candidate_curves(search.id, request.GET.get("ids", "").split(",")))


@login_required
@require_GET
def search_scatter(request, search_id: int):
    """Accuracy against ``x`` (params, flops or latency) of the finished candidates, sampled
    past 2,000 points with the whole front kept."""
    search = selectors.search_get_for(request.user, search_id)
    return JsonResponse(selectors.scatter_points(search, request.GET.get("x", "params")))


def _control(service, message: str):
    @login_required
    @require_POST
    def view(request, search_id: int):
        search = selectors.search_get_for(request.user, search_id)
        service(search)
        messages.info(request, message)
        return redirect(search)
    view.__name__ = service.__name__
    return view


search_pause = _control(services.search_pause, "The search is paused: no new candidates; running ones finish.")
search_resume = _control(services.search_resume, "The search goes on.")
search_cancel = _control(services.search_cancel,
                         "The search is cancelled; running candidates stop at the end of their epoch.")


@login_required
@require_http_methods(["GET", "POST"])
def search_delete(request, search_id: int):
    """GET asks for confirmation (what will go); POST deletes rows and checkpoint files."""
    search = selectors.search_get_for(request.user, search_id)
    if request.method == "POST":
        name = search.name
        removed = services.search_delete(search)
        messages.info(request, f"Deleted “{name}” and {removed} checkpoint file{'s' if removed != 1 else ''}.")
        return redirect("search_list")
    return render(request, "searches/search_confirm_delete.html",
                  {"search": search, **selectors.delete_summary(search)})


@login_required
def candidate_detail(request, search_id: int, candidate_id: int):
    candidate = selectors.candidate_get_for(request.user, search_id, candidate_id)
    search = candidate.search
    return render(request, "searches/candidate_detail.html", {
        "search": search, "candidate": candidate,
        "confusion": selectors.confusion_rows(candidate.confusion_matrix),
        "log_lines": selectors.candidate_log_lines(candidate.id),
        "page_config": {
            "search_id": search.id, "candidate_id": candidate.id, "space": _space_info(search),
            "arch": candidate.arch, "epochs": search.epochs, "curve": selectors.candidate_curve(candidate),
        },
    })


@login_required
def search_architectures(request, search_id: int):
    """Frequency of each choice among the top k, and a form to compare two candidates."""
    search = selectors.search_get_for(request.user, search_id)
    try:
        k = max(1, min(FREQUENCY_K_MAX, int(request.GET.get("k", FREQUENCY_K_DEFAULT))))
    except ValueError:
        k = FREQUENCY_K_DEFAULT
    return render(request, "searches/architectures.html", {
        "search": search, "k": k, "frequencies": selectors.choice_frequencies(search, k)})


@login_required
def search_diff(request, search_id: int):
    """Two candidates side by side: ``a`` and ``b`` are their numbers (``#index``)."""
    search = selectors.search_get_for(request.user, search_id)
    a = selectors.candidate_by_index(search, request.GET.get("a"))
    b = selectors.candidate_by_index(search, request.GET.get("b"))
    context = {"search": search, "a": a, "b": b, "a_value": request.GET.get("a", ""),
               "b_value": request.GET.get("b", "")}
    if a and b:
        context["rows"] = selectors.arch_diff(search, a.arch, b.arch)
        context["page_config"] = {"space": _space_info(search), "a": a.arch, "b": b.arch}
    elif request.GET.get("a") or request.GET.get("b"):
        context["missing"] = True
    return render(request, "searches/diff.html", context, status=200 if (a and b) or "missing" not in context else 404)


@login_required
def worker_list(request):
    from django.conf import settings
    rows = selectors.worker_rows_for(request.user)
    return render(request, "searches/workers.html", {
        "workers": rows, "workers_online": sum(not w["lost"] for w in rows),
        "timeout": getattr(settings, "HEARTBEAT_TIMEOUT_SECONDS", 60),
    })


def _checkpoint_response(candidate, request):
    filename = f"search{candidate.search_id}-candidate{candidate.index}.pt"
    return storage.download_response(candidate.checkpoint_path, filename, missing="This candidate has no checkpoint.",
                                     request=request)


@login_required
def candidate_checkpoint(request, search_id: int, candidate_id: int):
    return _checkpoint_response(selectors.candidate_get_for(request.user, search_id, candidate_id), request)


@login_required
def best_checkpoint(request, search_id: int):
    search = selectors.search_get_for(request.user, search_id)
    best = selectors.best_candidate(search)
    if best is None:
        raise Http404("No candidate of this search has finished yet.")
    return _checkpoint_response(best, request)
