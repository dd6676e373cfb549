"""Early-stopping rules: after epoch k of one candidate, stop it or let it go on?

A rule is a small frozen object with ``decide(curve, peers) -> StopDecision``:

* ``curve``: the candidate's metric after each epoch so far (``curve[k - 1]``
  is epoch k, the one that just ended), *higher is better* (validation
  accuracy; pass a negated loss for a loss);
* ``peers``: the curves of the search's other candidates, finished or still
  running, each as long as it got.

Rules keep no state, so a worker can ask at any time. NaN (a diverged
epoch) counts as the worst possible value. Each decision carries a reason
a person can read on the candidate's page.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import ClassVar, Sequence

Curve = Sequence[float]


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str


def _value(v: float) -> float:
    v = float(v)
    return v if math.isfinite(v) or v == math.inf else -math.inf


def _fmt(v: float) -> str:
    return f"{v:.4g}"


@dataclass(frozen=True)
class NoEarlyStopping:
    """Every candidate trains for its full budget."""

    name: ClassVar[str] = "none"
    label: ClassVar[str] = "No early stopping"

    def decide(self, curve: Curve, peers: Sequence[Curve]) -> StopDecision:
        return StopDecision(False, "early stopping is off")

    def settings(self) -> dict:
        return {}


@dataclass(frozen=True)
class MedianStopping:
    """Vizier's median stopping rule (Golovin et al. 2017).

    After epoch k, stop the candidate if the best value it reached by then
    is below the median, over the peers that reached epoch k, of their
    running averages ``mean(peer[:k])``. Nothing is stopped during the first
    ``grace_epochs`` epochs, nor while fewer than ``min_peers`` peers have
    reached epoch k.
    """

    name: ClassVar[str] = "median"
    label: ClassVar[str] = "Median stopping"
    grace_epochs: int = 3
    min_peers: int = 3

    def __post_init__(self):
        if self.grace_epochs < 0 or self.min_peers < 1:
            raise ValueError("grace_epochs must be >= 0 and min_peers >= 1")

    def decide(self, curve: Curve, peers: Sequence[Curve]) -> StopDecision:
        k = len(curve)
        if k <= self.grace_epochs:
            return StopDecision(False, f"epoch {k} is within the grace period of {self.grace_epochs} epochs")
        reached = [p for p in peers if len(p) >= k]
        if len(reached) < self.min_peers:
            return StopDecision(False, f"only {len(reached)} peers reached epoch {k}; "
                                       f"the rule needs {self.min_peers}")
        best = max(_value(v) for v in curve)
        median = statistics.median(statistics.fmean(_value(v) for v in p[:k]) for p in reached)
        if best < median:
            return StopDecision(True, f"best {_fmt(best)} by epoch {k} is below the median "
                                      f"{_fmt(median)} of {len(reached)} peers' running averages")
        return StopDecision(False, f"best {_fmt(best)} by epoch {k} is not below the median "
                                   f"{_fmt(median)} of {len(reached)} peers' running averages")

    def settings(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ASHA:
    """Asynchronous successive halving (Li et al. 2020), as a stopping rule.

    Rungs sit at epochs ``min_epochs * eta ** i`` (i = 0, 1, ...), below
    ``max_epochs`` when that is given (a candidate that reached its last
    epoch is never cut). At a rung the candidate goes on only if its value
    there is among the top ``1/eta`` of the values at that rung of every
    candidate that reached it, itself included. The best one always goes
    on: the first candidate at a rung is never stopped, and while fewer than
    ``eta`` have reached it only a new best goes on (as in Optuna's
    SuccessiveHalvingPruner). Between rungs nothing is decided.
    """

    name: ClassVar[str] = "asha"
    label: ClassVar[str] = "ASHA (successive halving)"
    min_epochs: int = 1
    eta: int = 3
    max_epochs: int | None = None

    def __post_init__(self):
        if self.min_epochs < 1 or self.eta < 2:
            raise ValueError("min_epochs must be >= 1 and eta >= 2")

    def is_rung(self, epoch: int) -> bool:
        if self.max_epochs is not None and epoch >= self.max_epochs:
            return False
        rung = self.min_epochs
        while rung < epoch:
            rung *= self.eta
        return rung == epoch

    def rungs(self, up_to: int) -> list[int]:
        """The rung epochs not after ``up_to``."""
        return [k for k in range(1, up_to + 1) if self.is_rung(k)]

    def decide(self, curve: Curve, peers: Sequence[Curve]) -> StopDecision:
        k = len(curve)
        if not self.is_rung(k):
            return StopDecision(False, f"epoch {k} is not a rung")
        value = _value(curve[k - 1])
        values = sorted([_value(p[k - 1]) for p in peers if len(p) >= k] + [value], reverse=True)
        keep = max(1, len(values) // self.eta)
        cutoff = values[keep - 1]
        where = f"at rung epoch {k}, {_fmt(value)}"
        among = f"the top {keep} of {len(values)} candidates (cutoff {_fmt(cutoff)})"
        if value >= cutoff:
            return StopDecision(False, f"{where} is among {among}")
        return StopDecision(True, f"{where} is not among {among}")

    def settings(self) -> dict:
        return asdict(self)


EARLY_STOPPING: dict[str, type] = {cls.name: cls for cls in (NoEarlyStopping, MedianStopping, ASHA)}


def get_early_stopping(name: str, settings: dict | None = None):
    try:
        cls = EARLY_STOPPING[name]
    except KeyError:
        raise ValueError(f"unknown early-stopping rule {name!r}; choose one of {sorted(EARLY_STOPPING)}") from None
    return cls(**(settings or {}))
