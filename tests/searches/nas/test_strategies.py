"""What each strategy does beyond the shared contract (see test_strategy_contract.py)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from searches.nas.cell import CellSpace
from searches.nas.registry import STRATEGIES
from searches.nas.space import Decision, SearchSpace
from searches.nas.strategies import (GeneticAlgorithm, GridSearch, Reinforce, RegularizedEvolution,
                                     SimulatedAnnealing, TPE)
from searches.nas.strategies import common
from searches.nas.strategy import Trial, strategy_rng


class PlainSpace(SearchSpace):
    """4 decisions x 5 choices, every combination valid and distinct: 625 architectures."""

    name = "plain"
    decisions = [Decision(f"d{i}", (0, 1, 2, 3, 4)) for i in range(4)]


SPACE = PlainSpace()


def arch(*codes):
    return SPACE.decode(list(codes))


def distance(a, b):
    return sum(x != y for x, y in zip(SPACE.encode(a), SPACE.encode(b)))


def done(a, score, **metrics):
    return Trial(a, "finished", score=score, metrics=metrics)


def filler(count, score=0.1, start=100, **metrics):
    """``count`` finished trials at distance 4 from arch(0,0,0,0) and arch(4,4,4,4)."""
    rng = random.Random(start)
    out, seen = [], set()
    while len(out) < count:
        codes = [rng.choice((1, 2, 3)) for _ in range(4)]
        if tuple(codes) not in seen:
            seen.add(tuple(codes))
            out.append(done(arch(*codes), score, **metrics))
    return out


def test_every_strategy_is_registered_with_a_label_and_settings():
    for name in ("random", "grid", "evolution", "genetic", "annealing", "reinforce", "tpe"):
        cls = STRATEGIES[name]
        assert cls.name == name and cls.label
        assert isinstance(cls().settings(), dict)


# --- grid -----------------------------------------------------------------
def test_grid_walks_every_distinct_architecture_once_in_encoding_order():
    space = CellSpace(ops=("none", "skip", "conv3x3"))
    history = []
    while True:
        answer = GridSearch().ask(space, history, 50, random.Random(0))
        if not answer:
            break
        history += [Trial(a, "queued") for a in answer]
    hashes = [space.arch_hash(t.arch) for t in history]
    distinct = {space.arch_hash(space.canonical(space.decode(c)))
                for c in np.ndindex(*(3,) * 6) if space.is_valid(space.decode(list(c)))}
    assert len(hashes) == len(set(hashes)) == len(distinct)
    positions = [common.grid_index(space, t.arch) for t in history]
    assert positions == sorted(positions)


def test_grid_resumes_after_the_furthest_position_in_history():
    first = GridSearch().ask(SPACE, [], 10, random.Random(0))
    history = [Trial(a, "finished", 0.5) for a in first[:4]] + [Trial(first[4], "failed")]
    assert GridSearch().ask(SPACE, history, 5, random.Random(9)) == first[5:]


def test_grid_picks_up_skipped_architectures_before_reporting_exhaustion():
    every = GridSearch().ask(SPACE, [], 625, random.Random(0))
    history = [Trial(a, "finished", 0.5) for a in every[:-1] if a != every[3]]
    history.append(Trial(every[-1], "finished", 0.5))
    assert GridSearch().ask(SPACE, history, 2, random.Random(0)) == [every[3]]


def test_grid_does_not_enumerate_the_space_to_resume(monkeypatch):
    space = CellSpace()  # 15,625 combinations
    history = [Trial(a, "finished", 0.5) for a in GridSearch().ask(space, [], 40, random.Random(0))]
    visited = []
    original = common.grid_arch
    monkeypatch.setattr(common, "grid_arch", lambda s, i: visited.append(i) or original(s, i))
    assert len(GridSearch().ask(space, history, 3, random.Random(0))) == 3
    assert len(visited) < 200


# --- regularized evolution ------------------------------------------------
def test_evolution_is_random_until_the_population_has_finished():
    best = arch(0, 0, 0, 0)
    history = [done(best, 0.9)] + filler(3)  # 4 finished < population 5
    near = sum(distance(child, best) == 1
               for seed in range(30)
               for child in RegularizedEvolution(population=5, sample=5).ask(SPACE, history, 1, random.Random(seed)))
    assert near <= 3  # random: about 16/625 of the children


def test_evolution_mutates_the_best_of_the_youngest_population():
    old_best, young_best = arch(4, 4, 4, 4), arch(0, 0, 0, 0)
    history = [done(old_best, 0.99)] + filler(4) + [done(young_best, 0.8)]
    strategy = RegularizedEvolution(population=5, sample=5)  # the sample is the whole population
    for seed in range(20):
        child, = strategy.ask(SPACE, history, 1, random.Random(seed))
        assert distance(child, young_best) == 1  # old_best has aged out


def test_evolution_with_objectives_selects_by_pareto_rank_not_score():
    # "dominated" has the top score but is dominated on (acc max, size min) by "front".
    dominated, front = arch(4, 4, 4, 4), arch(0, 0, 0, 0)
    history = filler(3, acc=0.1, size=100) + [done(dominated, 0.99, acc=0.5, size=50),
                                              done(front, 0.10, acc=0.9, size=1)]
    by_score = RegularizedEvolution(population=5, sample=5)
    by_front = RegularizedEvolution(population=5, sample=5, objectives=["acc", "size:min"])
    for seed in range(10):
        assert distance(by_score.ask(SPACE, history, 1, random.Random(seed))[0], dominated) == 1
        assert distance(by_front.ask(SPACE, history, 1, random.Random(seed))[0], front) == 1


# --- genetic algorithm ------------------------------------------------------
def test_genetic_keeps_elites_as_parents_after_they_age_out():
    elite, young_best = arch(4, 4, 4, 4), arch(0, 0, 0, 0)
    history = [done(elite, 0.99)] + filler(4) + [done(young_best, 0.8)]
    settings = dict(population=5, tournament=6, crossover_rate=0.0, mutation_rate=0.0)
    for seed in range(10):
        with_elite, = GeneticAlgorithm(elitism=1, **settings).ask(SPACE, history, 1, random.Random(seed))
        without, = GeneticAlgorithm(elitism=0, **settings).ask(SPACE, history, 1, random.Random(seed))
        assert distance(with_elite, elite) == 1
        assert distance(without, young_best) == 1


def test_genetic_children_mix_their_parents_decisions():
    a, b = arch(0, 0, 0, 0), arch(4, 4, 4, 4)
    history = [done(a, 0.9), done(b, 0.8)]
    strategy = GeneticAlgorithm(population=2, tournament=1, crossover_rate=1.0, mutation_rate=0.0, elitism=0)
    children = strategy.ask(SPACE, history, 10, random.Random(0))
    mixed = [c for c in children if set(SPACE.encode(c)) == {0, 4}]
    assert len(mixed) >= 3
    # A child that repeats a parent or an earlier child gets one mutation.
    for child in children:
        assert sum(code not in (0, 4) for code in SPACE.encode(child)) <= 1


# --- simulated annealing ----------------------------------------------------
def test_annealing_temperature_falls_with_finished_trials():
    strategy = SimulatedAnnealing(initial_temperature=2.0, cooling=0.5)
    assert [strategy.temperature(k) for k in range(3)] == [2.0, 1.0, 0.5]


def test_cold_annealing_only_accepts_improvements():
    good, worse = arch(0, 0, 0, 0), arch(4, 4, 4, 4)
    history = [done(good, 0.9), done(worse, 0.1)]
    strategy = SimulatedAnnealing(initial_temperature=1e-9)
    assert strategy.current(SPACE, history).arch == good


def test_hot_annealing_accepts_every_move():
    good, worse = arch(0, 0, 0, 0), arch(4, 4, 4, 4)
    history = [done(good, 0.9), done(worse, 0.1)]
    strategy = SimulatedAnnealing(initial_temperature=1e9, cooling=1.0)
    assert strategy.current(SPACE, history).arch == worse


def test_annealing_replays_the_same_chain_whatever_the_asks_rng():
    history = filler(12, start=5)
    history = [done(t.arch, random.Random(i).random()) for i, t in enumerate(history)]
    strategy = SimulatedAnnealing(initial_temperature=0.5, cooling=0.9)
    current = strategy.current(SPACE, history).arch
    for seed in range(10):
        child, = strategy.ask(SPACE, history, 1, random.Random(seed))
        assert distance(child, current) == 1


def test_annealing_walks_further_once_the_neighbours_are_taken():
    current = arch(0, 0, 0, 0)
    neighbours = [arch(*[c if i == d else 0 for i in range(4)]) for d in range(4) for c in range(1, 5)]
    history = [done(current, 0.9)] + [Trial(a, "running") for a in neighbours]
    for seed in range(5):
        answer = SimulatedAnnealing().ask(SPACE, history, 3, random.Random(seed))
        assert [distance(a, current) for a in answer] == [2, 2, 2]


# --- REINFORCE --------------------------------------------------------------
def test_reinforce_policy_learns_which_choices_pay():
    paying, others = [], []
    for seed in range(5):
        rng = random.Random(seed)
        history = []
        for _ in range(40):
            a = SPACE.sample(rng)
            history.append(done(a, 1.0 if a["d0"] == 2 else 0.0))
        probabilities = Reinforce().policy(SPACE, history)
        paying.append(probabilities[0][2])
        others.append(max(p.max() for p in probabilities[1:]))  # rewards ignore them
    assert np.mean(paying) > 0.5
    assert np.mean(others) < 0.4


def test_reinforce_policy_stays_uniform_when_every_reward_is_equal():
    rng = random.Random(0)
    history = [done(SPACE.sample(rng), 0.7) for _ in range(20)]
    for p in Reinforce().policy(SPACE, history):
        assert np.allclose(p, 0.2)


def test_reinforce_ignores_trials_without_a_result():
    rng = random.Random(0)
    finished = [done(SPACE.sample(rng), rng.random()) for _ in range(10)]
    others = [Trial(SPACE.sample(rng), state) for state in ("failed", "pruned", "running", "queued")]
    strategy = Reinforce()
    for a, b in zip(strategy.policy(SPACE, strategy.evidence(SPACE, finished + others)),
                    strategy.policy(SPACE, finished)):
        assert np.allclose(a, b)


# --- TPE ----------------------------------------------------------------------
def test_tpe_concentrates_on_the_choices_that_pay():
    rng = random.Random(1)
    history = []
    for _ in range(30):
        a = SPACE.sample(rng)
        history.append(done(a, 1.0 if a["d0"] == 3 else 0.0))
    answer = TPE(n_startup=5).ask(SPACE, history, 10, strategy_rng(0, len(history)))
    assert sum(a["d0"] == 3 for a in answer) >= 6  # random would give about 2


# --- warm start ---------------------------------------------------------------
def test_warm_start_counts_towards_the_population():
    best = arch(0, 0, 0, 0)
    warm = [done(best, 0.95)] + filler(4)
    strategy = RegularizedEvolution(population=5, sample=5, warm_start=warm)
    for seed in range(10):
        child, = strategy.ask(SPACE, [], 1, random.Random(seed))
        assert distance(child, best) == 1


def test_warm_start_ignores_unfinished_and_foreign_trials():
    foreign = {"layers": 3}
    warm = [Trial(foreign, "finished", 0.99), Trial(arch(0, 0, 0, 0), "failed")] + filler(2)
    strategy = RegularizedEvolution(population=2, warm_start=warm)
    assert [t.arch for t in strategy.prior(SPACE)] == [t.arch for t in warm[2:]]


@pytest.mark.parametrize("cls", [GridSearch, RegularizedEvolution, GeneticAlgorithm,
                                 SimulatedAnnealing, Reinforce, TPE])
def test_settings_rebuild_an_equal_strategy(cls):
    strategy = cls(warm_start=[{"arch": arch(1, 2, 3, 4), "state": "finished", "score": 0.5}])
    rebuilt = cls(**strategy.settings())
    assert rebuilt.settings() == strategy.settings()
    assert rebuilt.warm_start == [done(arch(1, 2, 3, 4), 0.5)]
