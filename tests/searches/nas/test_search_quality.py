"""Local search, the predictor-guided search, warm start that shapes the first proposals,
TPE without an Optuna study, and the caches that keep long histories cheap."""
from __future__ import annotations

import random

import pytest

from searches.nas.cell import CellSpace
from searches.nas.registry import STRATEGIES, get_strategy
from searches.nas.space import Decision, SearchSpace
from searches.nas.strategies import (LocalSearch, PredictorSearch, Reinforce, RegularizedEvolution,
                                     SimulatedAnnealing, TPE, common)
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


def done(a, score):
    return Trial(a, "finished", score=score)


def linear_score(a) -> float:
    """A smooth landscape: the larger the codes, the better (best: arch(4, 4, 4, 4))."""
    return sum(SPACE.encode(a)) / 16


def random_history(count, seed=0, score=linear_score):
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < count:
        a = SPACE.sample(rng)
        if SPACE.arch_hash(a) not in seen:
            seen.add(SPACE.arch_hash(a))
            out.append(done(a, score(a)))
    return out


def test_new_strategies_are_registered_for_the_form_and_the_api():
    assert STRATEGIES["local"] is LocalSearch and STRATEGIES["predictor"] is PredictorSearch
    from searches.forms import SearchForm

    assert {"local", "predictor"} <= {value for value, _ in SearchForm().fields["strategy"].choices}


# --- local search ---------------------------------------------------------------
def test_local_search_proposes_unseen_neighbours_of_the_best():
    history = random_history(10)
    best = max(history, key=lambda t: t.score).arch
    answer = LocalSearch(n_initial=10).ask(SPACE, history, 5, strategy_rng(0, 10))
    assert len(answer) == 5
    assert all(distance(a, best) == 1 for a in answer)
    assert not {SPACE.arch_hash(a) for a in answer} & {SPACE.arch_hash(t.arch) for t in history}


def test_local_search_moves_to_the_next_best_at_a_local_optimum():
    top, second = arch(2, 2, 2, 2), arch(0, 0, 0, 0)
    around_top = [a for a in common.neighbours(SPACE, top)]
    history = [done(top, 1.0), done(second, 0.9)] + [done(a, 0.1) for a in around_top]
    answer = LocalSearch(n_initial=2).ask(SPACE, history, 3, strategy_rng(0, len(history)))
    assert all(distance(a, second) == 1 for a in answer)


def test_local_search_is_random_until_n_initial_have_finished():
    history = random_history(3)
    answer = LocalSearch(n_initial=4).ask(SPACE, history, 20, strategy_rng(0, 3))
    best = max(history, key=lambda t: t.score).arch
    assert any(distance(a, best) > 1 for a in answer)


# --- predictor-guided -------------------------------------------------------------
def test_predictor_proposes_what_its_model_rates_best():
    history = random_history(30, seed=1)
    answer = PredictorSearch(exploration=0.0).ask(SPACE, history, 5, strategy_rng(0, 30))
    best_seen = max(t.score for t in history)
    mean_random = 0.5  # the mean score of a uniformly random architecture
    assert sum(linear_score(a) for a in answer) / 5 > mean_random
    assert max(linear_score(a) for a in answer) >= best_seen - 1 / 16


def test_predictor_ensemble_fits_a_smooth_landscape():
    import numpy as np

    from searches.nas.strategies.predictor import Ensemble, one_hot

    train, test = random_history(200, seed=2), random_history(50, seed=3)
    x = one_hot(SPACE, np.array([SPACE.encode(t.arch) for t in train]))
    model = Ensemble(x.shape[1], 32, 3, 1.0).fit(x, np.array([t.score for t in train]))
    predicted = model.predict(one_hot(SPACE, np.array([SPACE.encode(t.arch) for t in test]))).mean(axis=0)
    truth = np.array([t.score for t in test])
    assert np.corrcoef(predicted, truth)[0, 1] > 0.9


# --- warm start ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["evolution", "genetic", "local"])
def test_warm_start_shapes_the_first_proposals(name):
    """With a warm start the first ask already breeds from the earlier search's results."""
    best = arch(4, 4, 4, 4)
    warm = [done(best, 0.99)] + random_history(5, seed=4, score=lambda a: 0.1)
    strategy = get_strategy(name, {"warm_start": warm, **({"n_initial": 6} if name == "local" else {})})
    answer = strategy.ask(SPACE, [], 4, strategy_rng(0, 0))
    cold = get_strategy(name).ask(SPACE, [], 4, strategy_rng(0, 0))
    assert answer != cold
    assert sum(distance(a, best) <= 2 for a in answer) >= 2


def test_warm_start_maps_other_settings_into_the_space():
    three_ops = CellSpace(ops=("none", "skip", "conv3x3"))
    five_ops = CellSpace()
    small = three_ops.sample(random.Random(0))
    assert common.map_into(five_ops, small) == five_ops.validate(small)
    foreign = five_ops.validate({e: "conv1x1" for e in small})
    assert common.map_into(three_ops, foreign) is None

    widths = PlainSpace()
    widths.decisions = [Decision("width", (16, 32, 64))]
    assert common.map_into(widths, {"width": 48}) == {"width": 32}
    assert common.map_into(widths, {"width": 100}) == {"width": 64}
    assert common.map_into(widths, {"depth": 3}) is None


def test_warm_start_from_another_space_setting_reaches_the_strategy():
    three_ops, five_ops = CellSpace(ops=("none", "skip", "conv3x3")), CellSpace()
    warm = [done(three_ops.sample(random.Random(i)), 0.5) for i in range(5)]
    assert len(RegularizedEvolution(warm_start=warm).prior(five_ops)) == 5


# --- TPE -------------------------------------------------------------------------------
def test_tpe_never_proposes_a_seen_architecture_near_exhaustion():
    history = random_history(600, seed=5)
    answer = TPE().ask(SPACE, history, 25, strategy_rng(0, 600))
    seen = {SPACE.arch_hash(t.arch) for t in history}
    assert len(answer) == 25
    assert len({SPACE.arch_hash(a) for a in answer} | seen) == 625


def test_tpe_pending_trials_steer_the_batch_away():
    history = random_history(40, seed=6)
    running = [Trial(arch(4, 4, 4, c), "running") for c in range(5)]
    answer = TPE().ask(SPACE, history + running, 4, strategy_rng(0, 45))
    assert not {SPACE.arch_hash(a) for a in answer} & {SPACE.arch_hash(t.arch) for t in running}
    assert len({SPACE.arch_hash(a) for a in answer}) == 4


# --- caches never change an answer --------------------------------------------------
@pytest.mark.parametrize("cls", [Reinforce, SimulatedAnnealing])
def test_replay_cache_gives_the_same_answer_as_a_cold_replay(cls):
    history = random_history(60, seed=7)
    strategy = cls()
    for length in range(40, 61, 5):  # fills the cache with the states of growing prefixes
        strategy.ask(SPACE, history[:length], 1, strategy_rng(0, length))
    warm_answer = strategy.ask(SPACE, history, 3, strategy_rng(1, 60))
    common._REPLAY.clear()
    common._CODES.clear()
    assert cls().ask(SPACE, history, 3, strategy_rng(1, 60)) == warm_answer
