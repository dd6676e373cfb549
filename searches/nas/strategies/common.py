"""What the strategies in this package share: history views, warm start,
lazy grid enumeration, unseen proposals and fitness for selection.

Every strategy here is stateless: everything it knows comes from the
``history`` handed to ``ask`` (plus an optional warm start fixed at
construction), and every random choice comes from the ``rng`` argument.
"""
from __future__ import annotations

import itertools
import json
import random
from typing import Any, Callable, Iterator

import numpy as np

from ..pareto import Objective, has_objectives, parse_objectives, rank_and_crowding, utilities
from ..space import InvalidArchitecture, SearchSpace
from ..strategy import Strategy, Trial

Arch = dict
Propose = Callable[[random.Random], Arch]


def as_trial(item: Trial | dict) -> Trial:
    """A Trial from itself or from its JSON form ``{"arch", "state", "score", "metrics"}``."""
    if isinstance(item, Trial):
        return item
    return Trial(arch=dict(item["arch"]), state=item.get("state", "finished"),
                 score=item.get("score"), metrics=dict(item.get("metrics") or {}))


def trial_to_dict(trial: Trial) -> dict:
    return {"arch": trial.arch, "state": trial.state, "score": trial.score, "metrics": trial.metrics}


class HistoryStrategy(Strategy):
    """Base of the strategies in this package: adds warm start and settings.

    ``warm_start`` is a list of trials (``Trial`` objects or their JSON
    dicts) from an earlier search over the same space. Strategies that learn
    from results read them as if they came before this search's history, so
    they shape the first proposals; they are *not* counted as seen, so their
    architectures may be proposed (and trained) again in this search. Only
    finished trials whose architectures are valid in the space are used.
    """

    def __init__(self, warm_start: list | None = None):
        self.warm_start = [as_trial(t) for t in (warm_start or [])]

    def own_settings(self) -> dict:
        """The constructor arguments of the subclass, except ``warm_start``."""
        return {}

    def settings(self) -> dict:
        result = dict(self.own_settings())
        if self.warm_start:
            result["warm_start"] = [trial_to_dict(t) for t in self.warm_start]
        return result

    def prior(self, space: SearchSpace) -> list[Trial]:
        """The usable part of the warm start: its finished trials, mapped into ``space``.

        An earlier search over the same space with other settings (more or
        fewer ops, other widths) maps through ``map_into``; trials that have
        no counterpart here are dropped.
        """
        mapped = []
        for t in self.warm_start:
            arch = map_into(space, t.arch) if t.finished else None
            if arch is not None:
                mapped.append(Trial(arch, t.state, t.score, t.metrics))
        return mapped

    def evidence(self, space: SearchSpace, history: list[Trial]) -> list[Trial]:
        """Finished trials to learn from, in order: warm start first, then this search."""
        return self.prior(space) + [t for t in history if t.finished]


class PopulationStrategy(HistoryStrategy):
    """Base of the strategies that breed children from a population of results.

    Proposals are random until ``population`` results are ranked, or, with a
    warm start, from the first ask on: the earlier search's results are the
    first population, so they shape the very first proposals. Subclasses set
    ``population`` and ``objectives`` and implement ``parent_picker``.
    """

    population: int = 1
    objectives: list = []

    def parent_picker(self, space: SearchSpace, results: list[Trial], seen: set[str]) -> Propose:
        """A function rng -> child, given the rankable results (oldest first) and the seen hashes."""
        raise NotImplementedError

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        results = selectable(self.evidence(space, history), self.objectives)
        ready = len(results) >= (1 if self.prior(space) else self.population)
        if not ready:
            return fill_unseen(space, seen, n, rng)
        return propose_unseen(space, seen, n, rng, self.parent_picker(space, results, seen))


def seen_hashes(space: SearchSpace, history: list[Trial]) -> set[str]:
    """Hashes of every candidate of the search, whatever its state."""
    return {t.hash_in(space) for t in history}


def map_into(space: SearchSpace, arch: dict) -> dict | None:
    """``arch`` from a space of the same kind with other settings, as an architecture of ``space``.

    A value that is a choice here stays; a number that is not takes the
    nearest numeric choice (a width of 48 where 32 and 64 are offered
    becomes 32, the first of equal distance); a missing decision or any
    other value that is not a choice makes the whole architecture
    unmappable (None), as does a result that is invalid here.
    """
    if not isinstance(arch, dict):
        return None
    mapped = {}
    for d in space.decisions:
        value = arch.get(d.name)
        numbers = [c for c in d.choices if _is_number(c)]
        if value in d.choices:
            mapped[d.name] = value
        elif _is_number(value) and numbers:
            mapped[d.name] = min(numbers, key=lambda c: abs(c - value))
        else:
            return None
    try:
        return space.validate(mapped)
    except InvalidArchitecture:
        return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- integer codes, cached by hash ------------------------------------------
# Encoding an architecture canonicalises it, which dominates the cost of an ask
# once the history holds thousands of trials. The codes of a hash never change
# within a space, so they are cached (bounded); correctness never depends on it.
_CODES: dict[tuple[str, str], tuple[int, ...]] = {}
_CODES_LIMIT = 200_000


def space_key(space: SearchSpace) -> str:
    return space.name + json.dumps(space.settings(), sort_keys=True, default=str)


def codes_matrix(space: SearchSpace, trials: list[Trial]) -> np.ndarray:
    """The integer codes of ``trials`` as an (n, decisions) array."""
    key = space_key(space)
    rows = []
    for t in trials:
        h = (key, t.hash_in(space))
        codes = _CODES.get(h)
        if codes is None:
            if len(_CODES) >= _CODES_LIMIT:
                _CODES.clear()
            codes = _CODES[h] = tuple(space.encode(space.canonical(t.arch)))
        rows.append(codes)
    return np.array(rows, dtype=np.int64).reshape(len(rows), len(space.decisions))


# --- replaying a history, resumed from the longest cached prefix -------------
# Strategies that replay the results in order (annealing, REINFORCE) would redo
# the whole history at every ask; the state after each replayed prefix is
# cached under a fingerprint of that prefix (in this process only), so an ask
# replays just the trials added since the last one. A miss replays from the start.
_REPLAY: dict[tuple, Any] = {}
_REPLAY_LIMIT = 10_000


def replay(owner: tuple, space: SearchSpace, trials: list[Trial], start: Callable[[], Any],
           step: Callable[[Any, int, Trial], Any]) -> Any:
    """``step(state, k, trials[k])`` folded over ``trials`` from ``start()``; ``owner`` keys the cache
    (the strategy's name and settings and the space), so two strategies never share a state.
    ``step`` must return a new state object (a cached one is never changed in place)."""
    prints, running = [], hash(owner)
    for t in trials:
        running = hash((running, t.hash_in(space), t.score))
        prints.append(running)
    k, state = 0, None
    for k in range(len(trials), 0, -1):
        state = _REPLAY.get(prints[k - 1])
        if state is not None:
            break
    else:
        k, state = 0, start()
    for i in range(k, len(trials)):
        state = step(state, i, trials[i])
    if trials:
        if len(_REPLAY) >= _REPLAY_LIMIT:
            _REPLAY.clear()
        _REPLAY[prints[-1]] = state
    return state


def neighbours(space: SearchSpace, arch: Arch) -> list[Arch]:
    """Every valid architecture one decision away from ``arch`` (distinct, canonical)."""
    arch = space.canonical(arch)
    own = space.canonical_hash(arch)
    found, hashes = [], {own}
    for d in space.decisions:
        for choice in d.choices:
            if choice == arch[d.name]:
                continue
            try:
                child = space.validate({**arch, d.name: choice})
            except InvalidArchitecture:
                continue
            h = space.canonical_hash(child)
            if h not in hashes:
                hashes.add(h)
                found.append(child)
    return found


# --- lazy enumeration ---------------------------------------------------
def grid_codes(space: SearchSpace, index: int) -> list[int]:
    """The integer codes of grid position ``index`` (the last decision varies fastest)."""
    codes = []
    for d in reversed(space.decisions):
        index, code = divmod(index, len(d.choices))
        codes.append(code)
    return codes[::-1]


def grid_index(space: SearchSpace, arch: Arch) -> int | None:
    """The grid position of an architecture's canonical form, or None if it has none."""
    try:
        codes = space.encode(space.canonical(arch))
    except (KeyError, ValueError):
        return None
    index = 0
    for d, code in zip(space.decisions, codes):
        index = index * len(d.choices) + code
    return index


def grid_arch(space: SearchSpace, index: int) -> Arch | None:
    """The architecture at a grid position, or None when that position is skipped.

    A position is skipped when its decisions are invalid, or when they are
    not the canonical form of the architecture (it then appears at the
    position of its canonical form instead), so every distinct architecture
    appears exactly once. (A space whose canonical forms fall outside its
    choices has no such position; its duplicates are then left to the
    caller's check of hashes.)
    """
    codes = grid_codes(space, index)
    raw = {d.name: d.choices[c] for d, c in zip(space.decisions, codes)}
    try:
        arch = space.validate(raw)
    except InvalidArchitecture:
        return None
    position = grid_index(space, arch)
    if position is not None and position != index:
        return None
    return arch


def iter_grid(space: SearchSpace, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, Arch]]:
    """(position, architecture) pairs in grid order, computed one at a time."""
    stop = space.size() if stop is None else stop
    for index in range(start, stop):
        arch = grid_arch(space, index)
        if arch is not None:
            yield index, arch


# --- proposing unseen architectures -------------------------------------
def fill_unseen(space: SearchSpace, seen: set[str], n: int, rng: random.Random,
                tries_per_arch: int = 100) -> list[Arch]:
    """Up to ``n`` unseen valid architectures: random samples, then the grid.

    Random sampling fails only when almost all of the space has been seen
    (or valid architectures are rare); the grid walk that follows starts at
    a random position and finds whatever is left, so fewer than ``n`` come
    back only when the space is exhausted. New hashes are added to ``seen``.
    """
    found: list[Arch] = []
    while len(found) < n:
        arch = _sample_unseen(space, seen, rng, tries_per_arch)
        if arch is None:
            break
        found.append(arch)
    if len(found) < n:
        found += _walk_grid_for_unseen(space, seen, n - len(found), rng)
    return found


def _sample_unseen(space: SearchSpace, seen: set[str], rng: random.Random, tries: int) -> Arch | None:
    for _ in range(tries):
        try:
            arch = space.sample(rng)
        except InvalidArchitecture:
            return None
        h = space.canonical_hash(arch)  # sample returns the canonical form
        if h not in seen:
            seen.add(h)
            return arch
    return None


def _walk_grid_for_unseen(space: SearchSpace, seen: set[str], n: int, rng: random.Random) -> list[Arch]:
    start = rng.randrange(space.size())
    found: list[Arch] = []
    for _, arch in itertools.chain(iter_grid(space, start), iter_grid(space, 0, start)):
        h = space.arch_hash(arch)
        if h not in seen:
            seen.add(h)
            found.append(arch)
            if len(found) == n:
                break
    return found


def propose_unseen(space: SearchSpace, seen: set[str], n: int, rng: random.Random,
                   propose: Propose, tries_per_arch: int = 30, fill: bool = True) -> list[Arch]:
    """``n`` unseen architectures from ``propose``, topped up by ``fill_unseen``.

    ``propose`` may return invalid architectures or raise
    InvalidArchitecture; such proposals, and seen ones, are retried up to
    ``tries_per_arch`` times per slot. When a slot gets nothing, a random
    unseen architecture fills it, or with ``fill=False`` the proposals so
    far are returned.
    """
    found: list[Arch] = []
    for _ in range(n):
        for _ in range(tries_per_arch):
            try:
                arch = space.validate(propose(rng))
            except InvalidArchitecture:
                continue
            h = space.canonical_hash(arch)
            if h not in seen:
                seen.add(h)
                found.append(arch)
                break
        else:
            extra = fill_unseen(space, seen, 1, rng) if fill else []
            if not extra:
                break
            found += extra
    return found


# --- selection ------------------------------------------------------------
def read_objectives(objectives: Any) -> list[Objective]:
    return parse_objectives(objectives) if objectives else []


def selectable(trials: list[Trial], objectives: list[Objective]) -> list[Trial]:
    """Finished trials that selection can rank (with every objective's metric if there are several)."""
    trials = [t for t in trials if t.finished]
    if objectives:
        trials = [t for t in trials if has_objectives(t.metrics, objectives)]
    return trials


def fitness(trials: list[Trial], objectives: list[Objective]) -> list[tuple]:
    """A sort key per trial, larger is better.

    With no objectives: the score. With objectives: NSGA-II's order over
    these trials, i.e. a better (lower) Pareto front first, then a larger
    crowding distance.
    """
    if not objectives:
        return [(t.score,) for t in trials]
    points = [utilities(t.metrics, objectives) for t in trials]
    return [(-rank, crowd) for rank, crowd in rank_and_crowding(points)]


def tournament(trials: list[Trial], keys: list[tuple], size: int, rng: random.Random) -> Trial:
    """The fittest of ``size`` trials drawn without replacement (ties: the earliest drawn)."""
    drawn = rng.sample(range(len(trials)), min(size, len(trials)))
    best = max(drawn, key=lambda i: keys[i])  # max keeps the first of equal keys
    return trials[best]
