"""The leaderboard: server-side sort, filter and paging, read from a URL's query parameters.

Part of the selectors (``searches.selectors`` re-exports every name here).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from django import forms
from django.core.paginator import Paginator
from django.db.models import Count, F, Q

from . import events
from .models import Candidate, Search
from .nas import get_space


LEADERBOARD_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Sort keys the page offers -> model fields. Every order ends with ``index`` so that equal
# values keep one stable order on the server and in the page that merges live updates.
SORTS = {
    "best": "best_val_accuracy", "final": "final_val_accuracy", "test": "test_accuracy",
    "params": "param_count", "flops": "flops", "latency": "latency_ms",
    "epochs": "epochs_done", "index": "index",
}
DEFAULT_SORT = "-best"
# Columns a leaderboard row never shows: left in the database for the candidate page.
HEAVY_FIELDS = ("confusion_matrix", "extra")


def _light(qs):
    return qs.defer(*HEAVY_FIELDS)


class _EachValidChoice(forms.MultipleChoiceField):
    """A list of choices that keeps the valid ones and drops the rest (a URL may hold anything)."""

    def clean(self, value):
        return [v for v in self.to_python(value) if self.valid_value(v)]


class _Uses(forms.Field):
    """``name[,name...]=<json value>`` entries; what they name is checked against the space later."""

    def clean(self, value):
        values = value if isinstance(value, (list, tuple)) else [value]
        return [str(v) for v in values if v and "=" in str(v)]


class LeaderboardForm(forms.Form):
    """The leaderboard's query parameters. Used forgivingly: a field that does not clean
    keeps its default (never a 500, never an empty board for a typo)."""

    sort = forms.ChoiceField(required=False, choices=[(s, s) for key in SORTS for s in (key, f"-{key}")])
    state = _EachValidChoice(required=False, choices=[(s, s) for s in Candidate.State.values])
    acc_min = forms.FloatField(required=False)  # Django's FloatField refuses nan and inf
    acc_max = forms.FloatField(required=False)
    params_min = forms.FloatField(required=False)
    params_max = forms.FloatField(required=False)
    q = forms.CharField(required=False)  # stripped
    uses = _Uses(required=False)
    page = forms.IntegerField(required=False)
    page_size = forms.IntegerField(required=False)


_LISTS = ("state", "uses")


def _values(params, key) -> list:
    if hasattr(params, "getlist"):
        return params.getlist(key)
    value = params.get(key, [])
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _form_data(params) -> dict:
    """A QueryDict, or a dict of values or lists (the websocket's parse_qs), as the form's data:
    every value of a list parameter, the first non-empty value of any other."""
    data = {}
    for name in LeaderboardForm.base_fields:
        values = _values(params, name)
        if name in _LISTS:
            data[name] = values
        else:
            data[name] = next((v for v in values if v not in (None, "")), None)
    return data



@dataclass(frozen=True)
class LeaderboardQuery:
    """One view of the leaderboard: sort, filters and page, read forgivingly from a URL's
    query parameters (a value that makes no sense is dropped, never a 500)."""

    sort: str = DEFAULT_SORT
    states: tuple = ()
    acc_min: float | None = None
    acc_max: float | None = None
    params_min: float | None = None
    params_max: float | None = None
    q: str = ""
    uses: tuple = ()  # "name[,name...]=<json value>": any of these decisions has that value
    page: int = 1
    page_size: int = LEADERBOARD_PAGE_SIZE

    @classmethod
    def from_params(cls, params) -> LeaderboardQuery:
        form = LeaderboardForm(_form_data(params))
        form.is_valid()  # forgiving: a field that does not clean keeps its default
        got = {name: value for name, value in form.cleaned_data.items() if value not in (None, "", [])}
        return cls(
            sort=got.get("sort", DEFAULT_SORT), states=tuple(dict.fromkeys(got.get("state", ()))),
            acc_min=got.get("acc_min"), acc_max=got.get("acc_max"),
            params_min=got.get("params_min"), params_max=got.get("params_max"),
            q=got.get("q", "")[:200], uses=tuple(dict.fromkeys(got.get("uses", ())))[:10],
            page=max(1, min(10**7, got.get("page", 1))),
            page_size=max(1, min(MAX_PAGE_SIZE, got.get("page_size", LEADERBOARD_PAGE_SIZE))),
        )

    def as_dict(self) -> dict:
        return {"sort": self.sort, "state": list(self.states), "acc_min": self.acc_min, "acc_max": self.acc_max,
                "params_min": self.params_min, "params_max": self.params_max, "q": self.q,
                "uses": list(self.uses), "page": self.page, "page_size": self.page_size}

    @property
    def filtered(self) -> bool:
        return bool(self.states or self.q or self.uses) or any(
            v is not None for v in (self.acc_min, self.acc_max, self.params_min, self.params_max))


def _strict_choice(decision, value):
    """The choice of ``decision`` equal to ``value`` (a JSON ``true`` is not the choice ``1``)."""
    for choice in decision.choices:
        if choice == value and isinstance(choice, bool) == isinstance(value, bool):
            return choice
    raise ValueError


def resolve_uses(space, uses) -> list[tuple[tuple[str, ...], object]]:
    """``"e1_0,e2_0=\\"conv3x3\\""`` -> ``(("e1_0", "e2_0"), "conv3x3")``; entries naming an
    unknown decision or a value that is not one of its choices are dropped."""
    decisions = {d.name: d for d in space.decisions}
    resolved = []
    for item in uses:
        names_text, _, value_text = item.partition("=")
        try:
            value = json.loads(value_text)
            names = tuple(n for n in names_text.split(",") if n)
            if not names or any(n not in decisions for n in names):
                raise ValueError
            typed = [_strict_choice(decisions[n], value) for n in names]  # a choice of every one named
            resolved.append((names, typed[0]))
        except (ValueError, TypeError):
            continue
    return resolved


def uses_options(space) -> list[dict]:
    """The "uses" filter's choices for one space: each decision's values, and, where several
    decisions share one set of choices (the six edges of a cell), "any of them" first."""
    groups: dict[tuple, list[str]] = {}
    for d in space.decisions:
        groups.setdefault(tuple(json.dumps(c) for c in d.choices), []).append(d.name)
    options = []
    for choices, names in groups.items():
        if len(names) > 1:
            label = f"any of {names[0]}…{names[-1]}"
            options += [{"value": f"{','.join(names)}={c}", "label": f"{label} = {json.loads(c)}"} for c in choices]
    for d in space.decisions:
        options += [{"value": f"{d.name}={json.dumps(c)}", "label": f"{d.name} = {c}"} for c in d.choices]
    return options


def space_of(search: Search):
    try:
        return get_space(search.space, search.space_settings)
    except (ValueError, TypeError):
        return None


def leaderboard_queryset(search: Search, query: LeaderboardQuery):
    """The search's candidates filtered and ordered as ``query`` says; every filter is
    scoped by ``search_id`` first, so each one reads one search through its indexes."""
    qs = Candidate.objects.filter(search_id=search.id)
    if query.states:
        qs = qs.filter(state__in=query.states)
    if query.acc_min is not None:
        qs = qs.filter(best_val_accuracy__gte=query.acc_min)
    if query.acc_max is not None:
        qs = qs.filter(best_val_accuracy__lte=query.acc_max)
    if query.params_min is not None:
        qs = qs.filter(param_count__gte=query.params_min)
    if query.params_max is not None:
        qs = qs.filter(param_count__lte=query.params_max)
    if query.q:
        qs = qs.filter(genotype__icontains=query.q)
    space = space_of(search) if query.uses else None
    for names, value in (resolve_uses(space, query.uses) if space else []):
        any_of = Q()
        for name in names:
            any_of |= Q(arch__contains={name: value})
        qs = qs.filter(any_of)
    field = SORTS[query.sort.lstrip("-")]
    order = F(field).desc(nulls_last=True) if query.sort.startswith("-") else F(field).asc(nulls_last=True)
    return qs.order_by(order, "index") if field != "index" else qs.order_by(order)


def rows_between(part, count: int, start: int, stop: int) -> list:
    """Rows ``start:stop`` of ``part``, an ordered queryset of ``count`` rows. Past its middle
    they are read from the far end (the order reversed, a small offset from the last row, and
    put back in order here), so the last page seeks like the first instead of skipping every
    row before it."""
    start, stop = max(0, start), min(count, stop)
    if start >= stop:
        return []
    if start > count - stop:
        return list(_light(part.reverse())[count - stop:count - start])[::-1]
    return list(_light(part)[start:stop])


class BoardPaginator(Paginator):
    """Django's paginator (page numbers, counted once) whose pages past the middle are read
    backwards from the end, as the page's leaderboard reads them: for the API's candidate list."""

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return self._get_page(rows_between(self.object_list, self.count, bottom, top), number, self)


def _counts(qs, field: str) -> tuple[int, int | None]:
    """How many rows the board has and, sorted by validation accuracy, how many have one: one
    query either way (both counts read the ``(search, -best_val_accuracy)`` index)."""
    if field != "best_val_accuracy":
        return qs.count(), None
    got = qs.aggregate(total=Count("*"), scored=Count("best_val_accuracy"))
    return got["total"], got["scored"]


def leaderboard_page(search: Search, query: LeaderboardQuery | None = None) -> dict:
    """One page of the leaderboard: at most ``page_size`` rows, whatever the search's size.
    A page past the end shows the last.

    Sorted by validation accuracy (the default), the candidates that have one are read through
    the ``(search, -best_val_accuracy)`` index and those without one follow by index, so the
    first pages cost a few index reads even at 50,000 candidates. Other keys sort in Postgres.
    Pages in the back half are read backwards from the end (see ``rows_between``): the last
    page is as cheap as the first. The rows are counted once.
    """
    query = query or LeaderboardQuery()
    qs = leaderboard_queryset(search, query)
    field = SORTS[query.sort.lstrip("-")]
    size = query.page_size
    total, scored = _counts(qs, field)
    pages = max(1, -(-total // size))
    page = min(query.page, pages)
    offset = (page - 1) * size
    if field == "best_val_accuracy":
        best = F(field).desc() if query.sort.startswith("-") else F(field).asc()
        parts = [(qs.filter(best_val_accuracy__isnull=False).order_by(best, "index"), scored),
                 (qs.filter(best_val_accuracy__isnull=True).order_by("index"), total - scored)]
    else:
        parts = [(qs, total)]
    found, before = [], 0
    for part, count in parts:
        found += rows_between(part, count, offset - before, offset + size - before)
        before += count
    return {"rows": [events.candidate_data(c) for c in found], "total": total, "page": page, "pages": pages,
            "page_size": size, "offset": offset, "query": dict(query.as_dict(), page=page)}
