"""The comparison page: best-so-far curves of chosen searches, and one search's decisions
against accuracy. Reads come from ``selectors_compare``; the page draws them."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import selectors_compare


@login_required
@require_GET
def search_compare(request):
    """``s`` (repeatable): the searches to overlay; ``decisions``: the search whose
    decisions are shown against accuracy (the first chosen one by default)."""
    chosen = selectors_compare.chosen_searches(request.user, request.GET.getlist("s"))
    focus = selectors_compare.chosen_searches(request.user, [request.GET.get("decisions", "")])
    focus = focus[0] if focus else (chosen[0] if chosen else None)
    config = {
        "curves": [selectors_compare.best_so_far_curve(s) for s in chosen],
        "focus": {"id": focus.id, "name": focus.name, "decisions": selectors_compare.decision_stats(focus),
                  "parallel": selectors_compare.parallel_sample(focus)} if focus else None,
    }
    return render(request, "searches/compare.html", {
        "searches": selectors_compare.searches_to_compare(request.user),
        "chosen_ids": [s.id for s in chosen], "focus": focus, "page_config": config,
        "max_compared": selectors_compare.MAX_COMPARED,
    })
