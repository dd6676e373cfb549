"""The ask/tell contract every strategy follows.

A strategy holds no state between calls: ``ask`` sees the whole history of
the search (every candidate so far, in index order) and an ``rng`` seeded
from the search's seed and the history's length. A restarted controller
therefore proposes exactly what the old one would have.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .space import SearchSpace


@dataclass(frozen=True)
class Trial:
    """One candidate as a strategy sees it."""

    arch: dict
    state: str  # queued, running, finished, failed, pruned, cancelled
    score: float | None = None  # higher is better; None until finished
    metrics: dict = field(default_factory=dict)
    # The space's hash of ``arch`` when the caller has it stored already (the controller
    # does): saves re-hashing the whole history on every ask.
    arch_hash: str | None = None

    def hash_in(self, space) -> str:
        return self.arch_hash or space.arch_hash(self.arch)

    @property
    def finished(self) -> bool:
        return self.state == "finished" and self.score is not None


def strategy_rng(seed: int, history_length: int) -> random.Random:
    """The rng a controller hands to ``ask``: a function of seed and progress only."""
    return random.Random(f"nasweb:{seed}:{history_length}")


class Strategy:
    name: str = ""
    label: str = ""

    def ask(self, space: SearchSpace, history: list[Trial], n: int,
            rng: random.Random) -> list[dict]:
        raise NotImplementedError

    def settings(self) -> dict:
        return {}
