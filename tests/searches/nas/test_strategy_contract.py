"""The ask/tell contract, checked for every strategy in STRATEGIES on every space in SPACES.

A small simulated controller drives each strategy: it asks for a batch,
queues it, and on the next round moves queued trials to running and
running ones to finished, failed or pruned (by a fixed rule on the
architecture's hash), so every ask sees trials in every state.
"""
from __future__ import annotations

import json
import random
from functools import lru_cache

import pytest

from searches.nas.registry import SPACES, STRATEGIES, get_strategy
from searches.nas.space import Decision, SearchSpace
from searches.nas.strategy import Trial, strategy_rng

BUDGET = 15
BATCH = 3

# Every strategy with its defaults, plus settings small enough that the
# learning part (not only the random start) runs within the budget.
CONFIGS = [(name, {}) for name in sorted(STRATEGIES)] + [
    ("evolution", {"population": 4, "sample": 2}),
    ("evolution", {"population": 4, "sample": 2, "objectives": ["val_acc", "size:min"]}),
    ("genetic", {"population": 4, "tournament": 2}),
    ("genetic", {"population": 4, "tournament": 2, "objectives": ["val_acc", "size:min"]}),
    ("tpe", {"n_startup": 3}),
    ("local", {"n_initial": 3}),
    ("predictor", {"n_initial": 3}),
]
CONFIG_IDS = [name + ("-" + "-".join(sorted(kw)) if kw else "") for name, kw in CONFIGS]


def space_named(name: str) -> SearchSpace:
    return SPACES[name]()


def unit_hash(space, arch) -> float:
    """A synthetic accuracy in [0, 1): a fixed function of the architecture."""
    return int(space.arch_hash(arch)[:8], 16) / 16 ** 8


def outcome(space, trial: Trial) -> Trial:
    """A running trial's end: finished (most), failed or pruned, fixed by its hash."""
    h = int(space.arch_hash(trial.arch)[8:16], 16)
    if h % 6 == 0:
        return Trial(trial.arch, "failed")
    if h % 6 == 1:
        return Trial(trial.arch, "pruned", metrics={"val_acc": 0.1})
    acc = unit_hash(space, trial.arch)
    size = sum(space.encode(trial.arch))
    return Trial(trial.arch, "finished", score=acc, metrics={"val_acc": acc, "size": size})


def advance(space, trial: Trial) -> Trial:
    if trial.state == "queued":
        return Trial(trial.arch, "running")
    if trial.state == "running":
        return outcome(space, trial)
    return trial


def budget_for(name: str) -> int:
    return BUDGET


def simulate(strategy, space, seed: int, budget: int):
    """Run a controller loop; return the final history and every (history seen, answer) pair."""
    history: list[Trial] = []
    asks = []
    while len(history) < budget:
        n = min(BATCH, budget - len(history))
        seen_by_ask = list(history)
        answer = strategy.ask(space, seen_by_ask, n, strategy_rng(seed, len(history)))
        assert len(answer) == n, "fewer proposals than asked for although the space has room"
        asks.append((seen_by_ask, answer))
        history = [advance(space, t) for t in history] + [Trial(a, "queued") for a in answer]
    return history, asks


@lru_cache(maxsize=None)
def run(config_index: int, space_name: str, seed: int):
    name, kwargs = CONFIGS[config_index]
    space = space_named(space_name)
    return simulate(get_strategy(name, kwargs), space, seed, budget_for(name))


def through_json(history: list[Trial]) -> list[Trial]:
    """The history as a controller rebuilt from the database would see it."""
    rows = json.loads(json.dumps([{"arch": t.arch, "state": t.state, "score": t.score,
                                   "metrics": t.metrics} for t in history]))
    return [Trial(**row) for row in rows]


spaces = pytest.mark.parametrize("space_name", sorted(SPACES))
configs = pytest.mark.parametrize("config_index", range(len(CONFIGS)), ids=CONFIG_IDS)


@spaces
@configs
def test_proposes_only_valid_canonical_json_architectures(config_index, space_name):
    space = space_named(space_name)
    history, _ = run(config_index, space_name, 0)
    for trial in history:
        assert space.validate(trial.arch) == trial.arch
        assert json.loads(json.dumps(trial.arch)) == trial.arch


@spaces
@configs
def test_respects_the_budget_without_duplicates(config_index, space_name):
    space = space_named(space_name)
    history, asks = run(config_index, space_name, 0)
    assert len(history) == budget_for(CONFIGS[config_index][0])
    hashes = [space.arch_hash(t.arch) for t in history]
    assert len(set(hashes)) == len(hashes)
    assert all(len(answer) <= BATCH for _, answer in asks)


@spaces
@configs
def test_same_seed_gives_the_same_sequence(config_index, space_name):
    name, kwargs = CONFIGS[config_index]
    again, _ = simulate(get_strategy(name, kwargs), space_named(space_name), 0, budget_for(name))
    first, _ = run(config_index, space_name, 0)
    assert [t.arch for t in again] == [t.arch for t in first]


@spaces
@configs
def test_rebuilt_controller_makes_the_same_next_proposal(config_index, space_name):
    """Kill the controller after any ask: a new strategy built from the stored
    settings, given the history read back from the database, proposes exactly
    what the old one did."""
    name, kwargs = CONFIGS[config_index]
    space = space_named(space_name)
    stored_settings = json.loads(json.dumps(get_strategy(name, kwargs).settings()))
    _, asks = run(config_index, space_name, 1)
    for history, answer in asks:
        rebuilt = get_strategy(name, stored_settings)
        n = len(answer)
        assert rebuilt.ask(space, through_json(history), n, strategy_rng(1, len(history))) == answer


@spaces
@configs
def test_copes_with_an_empty_history(config_index, space_name):
    name, kwargs = CONFIGS[config_index]
    space = space_named(space_name)
    answer = get_strategy(name, kwargs).ask(space, [], 4, strategy_rng(7, 0))
    assert len(answer) == 4
    assert len({space.arch_hash(a) for a in answer}) == 4
    assert all(space.is_valid(a) for a in answer)


@spaces
@configs
def test_never_reproposes_unfinished_or_failed_trials(config_index, space_name):
    name, kwargs = CONFIGS[config_index]
    space = space_named(space_name)
    rng = random.Random(3)
    states = ["queued", "running", "failed", "pruned", "cancelled"] * 4
    history, seen = [], set()
    for state in states:
        arch = space.sample(rng)
        if space.arch_hash(arch) not in seen:
            seen.add(space.arch_hash(arch))
            history.append(Trial(arch, state))
    answer = get_strategy(name, kwargs).ask(space, history, 5, strategy_rng(3, len(history)))
    assert len(answer) == 5
    assert not {space.arch_hash(a) for a in answer} & seen
    assert all(space.is_valid(a) for a in answer)


# --- a space small enough to use up -----------------------------------------
class TinySpace(SearchSpace):
    """3 x 3 combinations; (c, z) is invalid and every ("a", *) is the same network: 6 architectures."""

    name = "tiny"
    decisions = [Decision("op", ("a", "b", "c")), Decision("width", ("x", "y", "z"))]

    def check(self, arch):
        from searches.nas.space import InvalidArchitecture

        if arch["op"] == "c" and arch["width"] == "z":
            raise InvalidArchitecture("c cannot be z wide")

    def canonical(self, arch):
        arch = dict(arch)
        if arch["op"] == "a":
            arch["width"] = "x"
        return arch


TINY_ARCHS = 6


@configs
def test_uses_up_a_small_space_then_proposes_nothing(config_index):
    name, kwargs = CONFIGS[config_index]
    space = TinySpace()
    strategy = get_strategy(name, kwargs)
    history: list[Trial] = []
    for _ in range(4):
        n = 4
        answer = strategy.ask(space, history, n, strategy_rng(0, len(history)))
        assert len(answer) == min(n, TINY_ARCHS - len(history))
        history += [outcome(space, Trial(a, "running")) for a in answer]
    assert len({space.arch_hash(t.arch) for t in history}) == TINY_ARCHS
    assert strategy.ask(space, history, 2, strategy_rng(0, len(history))) == []


@configs
def test_warm_start_is_not_treated_as_seen(config_index):
    """A warm start covering the whole space does not stop a strategy from
    proposing those architectures again, and survives a settings round trip."""
    name, kwargs = CONFIGS[config_index]
    space = TinySpace()
    every_arch = [a for a in (space.decode([i, j]) for i in range(3) for j in range(3)) if space.is_valid(a)]
    warm = [outcome(space, Trial(a, "running")) for a in every_arch]
    strategy = get_strategy(name, {**kwargs, "warm_start": warm})
    answer = strategy.ask(space, [], TINY_ARCHS, strategy_rng(0, 0))
    assert len({space.arch_hash(a) for a in answer}) == TINY_ARCHS
    stored = json.loads(json.dumps(strategy.settings()))
    assert get_strategy(name, stored).ask(space, [], TINY_ARCHS, strategy_rng(0, 0)) == answer
