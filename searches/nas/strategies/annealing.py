"""Simulated annealing over mutations of one current solution."""
from __future__ import annotations

import functools
import math
import random

from .common import (HistoryStrategy, fill_unseen, neighbours, propose_unseen, replay, seen_hashes,
                     space_key)


class SimulatedAnnealing(HistoryStrategy):
    """Propose mutations of the current solution; accept worse ones less and less often.

    The current solution is rebuilt on every ``ask`` by replaying the
    finished trials in order (warm start first): the first one is current;
    each later one replaces it if it scores at least as well, or else with
    probability ``exp(delta / T)``. ``delta`` is the score difference divided
    by the spread (standard deviation) of the scores seen up to then, so the
    temperature does not depend on the scale of the scores, and
    ``T = initial_temperature * cooling ** k`` where ``k`` is the number of
    finished trials before that one.

    Each acceptance draw is a fixed function of the trial's position and
    architecture hash (``acceptance_draw``), not of ``ask``'s rng: replaying the
    same history therefore repeats the same decisions on every call and
    after any restart, and the history itself follows from the search seed.

    Proposals are single mutations of the current solution; once those are
    all taken, walks of 2, ... ``max_steps`` mutations, and only then random
    architectures. Proposals are random until a trial has finished.
    """

    name = "annealing"
    label = "Simulated annealing"

    def __init__(self, initial_temperature: float = 1.0, cooling: float = 0.95, max_steps: int = 3,
                 warm_start: list | None = None):
        super().__init__(warm_start)
        if initial_temperature <= 0 or not 0 < cooling <= 1 or max_steps < 1:
            raise ValueError("initial_temperature must be positive, cooling in (0, 1] and max_steps >= 1")
        self.initial_temperature = float(initial_temperature)
        self.cooling = float(cooling)
        self.max_steps = int(max_steps)

    def own_settings(self):
        return {"initial_temperature": self.initial_temperature, "cooling": self.cooling,
                "max_steps": self.max_steps}

    def temperature(self, finished: int) -> float:
        """The temperature once ``finished`` trials have finished."""
        return self.initial_temperature * self.cooling ** finished

    def current(self, space, results):
        """The solution the annealing chain sits on after ``results`` (finished trials, in order).

        The replay resumes from the state cached for the longest already
        replayed prefix (``replay``); the spread is a running one (Welford).
        """
        def step(state, k, candidate):
            if state is None:
                return candidate, 1, float(candidate.score), 0.0
            current, count, mean, square_sum = state
            count += 1
            change = candidate.score - mean
            mean += change / count
            square_sum += change * (candidate.score - mean)
            delta = candidate.score - current.score
            if delta >= 0:
                return candidate, count, mean, square_sum
            spread = (square_sum / count) ** 0.5 or 1.0
            if acceptance_draw(k, candidate.hash_in(space)) < math.exp(delta / spread / self.temperature(k)):
                current = candidate
            return current, count, mean, square_sum

        owner = ("annealing", self.initial_temperature, self.cooling, space_key(space))
        return replay(owner, space, results, lambda: None, step)[0]

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        results = self.evidence(space, history)
        if not results:
            return fill_unseen(space, seen, n, rng)
        current = self.current(space, results).arch
        proposals = [a for a in neighbours(space, current) if space.canonical_hash(a) not in seen]
        rng.shuffle(proposals)  # the untried one-decision moves, in random order
        proposals = proposals[:n]
        seen.update(space.canonical_hash(a) for a in proposals)
        for steps in range(2, self.max_steps + 1):
            if len(proposals) == n:
                return proposals
            neighbour = functools.partial(walk, space, current, steps)
            proposals += propose_unseen(space, seen, n - len(proposals), rng, neighbour, fill=False)
        return proposals + fill_unseen(space, seen, n - len(proposals), rng)


def acceptance_draw(k: int, arch_hash: str) -> float:
    """A uniform draw in [0, 1) fixed by the trial's position and hash (splitmix64 of both)."""
    z = (int(arch_hash[:16], 16) ^ (k * 0x9E3779B97F4A7C15)) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


def walk(space, arch: dict, steps: int, rng: random.Random) -> dict:
    """``steps`` successive mutations of ``arch``."""
    for _ in range(steps):
        arch = space.mutate(arch, rng)
    return arch
