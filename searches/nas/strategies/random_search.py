"""Uniform random search without repeats: the baseline every other strategy is measured against."""
from __future__ import annotations

from ..strategy import Strategy
from .common import fill_unseen, seen_hashes


class RandomSearch(Strategy):
    """Uniform sampling without duplicates."""

    name = "random"
    label = "Random search"

    def __init__(self, warm_start: list | None = None):
        # Accepted like every strategy's, and ignored: random search learns nothing.
        self.warm_start = list(warm_start or [])

    def ask(self, space, history, n, rng):
        return fill_unseen(space, seen_hashes(space, history), n, rng) if n > 0 else []
