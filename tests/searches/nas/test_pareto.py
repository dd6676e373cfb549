import math

import pytest

from searches.nas.pareto import (Objective, crowding_distance, dominates, mnas_reward, non_dominated_sort,
                                 pareto_front, parse_objectives, rank_and_crowding, score, utilities)


def test_dominates_needs_at_least_as_good_everywhere_and_better_somewhere():
    assert dominates((2, 2), (1, 2))
    assert not dominates((2, 2), (2, 2))
    assert not dominates((3, 1), (1, 3))


def test_pareto_front_keeps_only_undominated_points():
    points = [(1, 5), (2, 4), (2, 2), (4, 1), (3, 3), (0, 0)]
    assert pareto_front(points) == [0, 1, 3, 4]


def test_non_dominated_sort_peels_fronts_in_order():
    points = [(1, 5), (2, 2), (4, 1), (1, 1), (3, 3), (0, 0)]
    assert non_dominated_sort(points) == [[0, 2, 4], [1], [3], [5]]


def test_crowding_distance_is_infinite_at_the_extremes_and_larger_where_lonelier():
    front = [(0, 4), (1, 3), (3, 1), (4, 0)]
    d = crowding_distance(front)
    assert d[0] == d[3] == math.inf
    assert d[1] == pytest.approx(3 / 4 + 3 / 4)
    assert d[2] == pytest.approx(3 / 4 + 3 / 4)
    crowded = crowding_distance([(0, 4), (0.5, 3.5), (1, 3), (4, 0)])
    assert crowded[1] < crowded[2]


def test_rank_and_crowding_gives_each_point_its_front_number():
    points = [(1, 5), (1, 4), (4, 1), (1, 1)]
    assert [rank for rank, _ in rank_and_crowding(points)] == [0, 1, 0, 2]


def test_objectives_flip_the_sign_of_minimised_metrics():
    objectives = parse_objectives(["val_acc", "latency_ms:min", {"metric": "params", "direction": "min"}])
    assert objectives == [Objective("val_acc"), Objective("latency_ms", "min"), Objective("params", "min")]
    assert utilities({"val_acc": 0.9, "latency_ms": 12, "params": 3}, objectives) == (0.9, -12, -3)
    with pytest.raises(ValueError):
        Objective("x", "up")


def test_mnas_reward_soft_constraint_trades_accuracy_for_latency():
    assert mnas_reward(0.8, 20, 20) == pytest.approx(0.8)
    assert mnas_reward(0.8, 40, 20) == pytest.approx(0.8 * 2 ** -0.07)
    assert mnas_reward(0.8, 10, 20) > 0.8  # faster than the target earns a little


def test_mnas_reward_hard_variant_only_punishes_overshoot():
    assert mnas_reward(0.8, 10, 20, w=0, w_over=-1) == pytest.approx(0.8)
    assert mnas_reward(0.8, 40, 20, w=0, w_over=-1) == pytest.approx(0.4)


def test_score_reads_one_objective_a_list_or_a_reward():
    metrics = {"val_acc": 0.9, "loss": 0.3, "latency_ms": 40}
    assert score(metrics, "val_acc") == 0.9
    assert score(metrics, "loss:min") == -0.3
    assert score(metrics, ["loss:min", "val_acc"]) == -0.3
    reward = {"reward": "mnasnet", "accuracy": "val_acc", "latency": "latency_ms", "target": 20}
    assert score(metrics, reward) == pytest.approx(0.9 * 2 ** -0.07)
    with pytest.raises(KeyError):
        score(metrics, "test_acc")


def test_the_two_objective_front_is_the_pairwise_one_ties_and_duplicates_included():
    import random

    from searches.nas.pareto import dominates as dom
    rng = random.Random(3)
    for _ in range(200):
        points = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(rng.randint(0, 25))]
        pairwise = [i for i, p in enumerate(points) if not any(dom(q, p) for j, q in enumerate(points) if j != i)]
        assert pareto_front(points) == pairwise


def test_front_2d_lists_the_step_line_cheapest_first_and_skips_missing_values():
    from searches.nas.pareto import front_2d
    points = [(1, 0.9, 100), (2, 0.8, 50), (3, 0.85, 120), (4, 0.95, 400), (5, 0.7, None), (6, None, 10)]
    front = front_2d(points, value=lambda p: p[1], cost=lambda p: p[2])
    assert [p[0] for p in front] == [2, 1, 4]
