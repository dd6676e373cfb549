"""Several objectives at once: Pareto fronts, NSGA-II ranking and rewards.

Points are sequences of numbers in which *higher is better in every
coordinate*; ``Objective.utility`` turns a metrics dict into such a value
(a metric to minimise is negated). Keeping one convention makes
``dominates`` and friends free of direction flags.

A search with several objectives still gives every finished trial a single
``score`` (for strategies that only look at one number and for the
leaderboard): ``score(metrics, spec)`` computes it from a spec that is either
one objective, a list of objectives (the first one is the primary score) or
a MnasNet reward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """A metric key and whether to maximise or minimise it."""

    metric: str
    direction: str = "max"

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction of {self.metric!r} must be 'max' or 'min', not {self.direction!r}")

    def value(self, metrics: dict) -> float:
        try:
            return float(metrics[self.metric])
        except KeyError:
            raise KeyError(f"metric {self.metric!r} is missing from {sorted(metrics)}") from None

    def utility(self, metrics: dict) -> float:
        """The metric with its sign flipped when it is minimised: higher is better."""
        value = self.value(metrics)
        return value if self.direction == "max" else -value

    def to_dict(self) -> dict:
        return {"metric": self.metric, "direction": self.direction}


def parse_objective(spec: Any) -> Objective:
    """Accept an Objective, ``"val_acc"``, ``"latency_ms:min"`` or ``{"metric": ..., "direction": ...}``."""
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        metric, _, direction = spec.partition(":")
        return Objective(metric, direction or "max")
    if isinstance(spec, dict) and "metric" in spec:
        return Objective(spec["metric"], spec.get("direction", "max"))
    raise ValueError(f"cannot read an objective from {spec!r}")


def parse_objectives(specs: Any) -> list[Objective]:
    if isinstance(specs, (str, dict, Objective)):
        specs = [specs]
    return [parse_objective(s) for s in specs]


def utilities(metrics: dict, objectives: Sequence[Objective]) -> tuple[float, ...]:
    """The point of one trial: one higher-is-better number per objective."""
    return tuple(o.utility(metrics) for o in objectives)


def has_objectives(metrics: dict, objectives: Sequence[Objective]) -> bool:
    """Whether every objective's metric is present and a finite number."""
    for o in objectives:
        try:
            if not math.isfinite(o.value(metrics)):
                return False
        except (KeyError, TypeError, ValueError):
            return False
    return True


# --- dominance, fronts and crowding ------------------------------------
def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is at least as good as ``b`` everywhere and better somewhere."""
    if len(a) != len(b):
        raise ValueError("points must have the same number of objectives")
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the points no other point dominates.

    Two objectives (the usual case: accuracy against a cost) take one sort and a sweep,
    so a 50,000-candidate search's front is quick; more take the pairwise comparison.
    """
    if points and all(len(p) == 2 for p in points):
        return _front_2d(points)
    return [i for i, p in enumerate(points)
            if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def _front_2d(points: Sequence[Sequence[float]]) -> list[int]:
    # Best first coordinate first; among equal ones only those with the group's best second
    # coordinate can be on the front, and they are if no better first coordinate had a
    # second one as good. Equal points dominate nothing, so all of them stay.
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best_before = [], -math.inf
    start = 0
    while start < len(order):
        first = points[order[start]][0]
        end = start
        while end < len(order) and points[order[end]][0] == first:
            end += 1
        top = points[order[start]][1]
        if top > best_before:
            front.extend(i for i in order[start:end] if points[i][1] == top)
            best_before = top
        start = end
    return sorted(front)


def front_2d(items: Sequence, value, cost) -> list:
    """The items on the front of (most ``value``, least ``cost``), cheapest first: the step
    line a scatter of accuracy against a cost draws. Items missing either are left out."""
    usable = [item for item in items if value(item) is not None and cost(item) is not None]
    front = [usable[i] for i in pareto_front([(value(item), -cost(item)) for item in usable])]
    return sorted(front, key=lambda item: (cost(item), -value(item)))


def non_dominated_sort(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """NSGA-II fronts: lists of indices, the Pareto front first; every index appears once."""
    dominated_by: list[list[int]] = [[] for _ in points]  # i -> points i dominates
    domination_count = [0] * len(points)                  # i -> how many dominate i
    for i, p in enumerate(points):
        for j in range(i + 1, len(points)):
            q = points[j]
            if dominates(p, q):
                dominated_by[i].append(j)
                domination_count[j] += 1
            elif dominates(q, p):
                dominated_by[j].append(i)
                domination_count[i] += 1
    fronts: list[list[int]] = []
    current = [i for i, c in enumerate(domination_count) if c == 0]
    while current:
        fronts.append(sorted(current))
        following = []
        for i in current:
            for j in dominated_by[i]:
                domination_count[j] -= 1
                if domination_count[j] == 0:
                    following.append(j)
        current = following
    return fronts


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point within its own set (usually one front).

    The extremes of every objective get ``inf``; the others the sum over
    objectives of the normalised gap between their two neighbours. Larger
    means lonelier, which selection prefers to keep the front spread out.
    """
    n = len(points)
    if n == 0:
        return []
    distance = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: (points[i][m], i))
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for k in range(1, n - 1):
            gap = points[order[k + 1]][m] - points[order[k - 1]][m]
            distance[order[k]] += gap / (high - low)
    return distance


def rank_and_crowding(points: Sequence[Sequence[float]]) -> list[tuple[int, float]]:
    """For each point, (front number starting at 0, crowding distance within that front)."""
    result: list[tuple[int, float]] = [(0, 0.0)] * len(points)
    for rank, front in enumerate(non_dominated_sort(points)):
        for i, d in zip(front, crowding_distance([points[i] for i in front])):
            result[i] = (rank, d)
    return result


# --- single numbers from several metrics --------------------------------
def mnas_reward(accuracy: float, latency: float, target: float,
                w: float = -0.07, w_over: float | None = None) -> float:
    """MnasNet's reward ``accuracy * (latency / target) ** w`` (Tan et al., 2019).

    The exponent is ``w`` while ``latency <= target`` and ``w_over`` (default:
    ``w``) above it. The default ``w = w_over = -0.07`` is the paper's soft
    constraint: twice the latency costs about 5% of the reward, and being
    faster than the target still earns a little. The paper's *hard* variant
    is ``w=0, w_over=-1``: no bonus under the target, and above it the
    reward falls in proportion to the overshoot.
    """
    if latency <= 0 or target <= 0:
        raise ValueError("latency and target must be positive")
    exponent = w if latency <= target or w_over is None else w_over
    return accuracy * (latency / target) ** exponent


def score(metrics: dict, spec: Any) -> float:
    """The single higher-is-better number a single-objective strategy sees.

    ``spec`` is one of:

    * an objective (``"val_acc"``, ``"loss:min"``, a dict with ``metric`` and
      ``direction``, or an ``Objective``): that metric, negated if minimised;
    * a list of objectives: the first one (the primary objective);
    * ``{"reward": "mnasnet", "accuracy": "val_acc", "latency": "latency_ms",
      "target": 20.0, "w": -0.07, "w_over": None}``: ``mnas_reward`` of those
      metrics (``w`` and ``w_over`` optional).

    A missing metric raises KeyError.
    """
    if isinstance(spec, dict) and spec.get("reward") == "mnasnet":
        for key in ("accuracy", "latency"):
            if spec[key] not in metrics:
                raise KeyError(f"metric {spec[key]!r} is missing from {sorted(metrics)}")
        return mnas_reward(float(metrics[spec["accuracy"]]), float(metrics[spec["latency"]]),
                           float(spec["target"]), spec.get("w", -0.07), spec.get("w_over"))
    if isinstance(spec, dict) and "reward" in spec:
        raise ValueError(f"unknown reward {spec['reward']!r}; the only one is 'mnasnet'")
    objectives = parse_objectives(spec)
    if not objectives:
        raise ValueError("an empty list of objectives gives no score")
    return objectives[0].utility(metrics)
