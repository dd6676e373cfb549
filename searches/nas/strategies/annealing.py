"""Simulated annealing over mutations of one current solution."""
from __future__ import annotations

import functools
import math
import random

from .common import HistoryStrategy, fill_unseen, propose_unseen, seen_hashes


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

    Each acceptance draw comes from its own generator keyed by the trial's
    position and architecture hash, not from ``ask``'s rng: replaying the
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
        """The solution the annealing chain sits on after ``results`` (finished trials, in order)."""
        current = results[0]
        count, mean, square_sum = 1, float(results[0].score), 0.0  # Welford's running spread
        for k in range(1, len(results)):
            candidate = results[k]
            count += 1
            step = candidate.score - mean
            mean += step / count
            square_sum += step * (candidate.score - mean)
            delta = candidate.score - current.score
            if delta >= 0:
                current = candidate
                continue
            spread = (square_sum / count) ** 0.5 or 1.0
            draw = random.Random(f"annealing:{k}:{candidate.hash_in(space)}").random()
            if draw < math.exp(delta / spread / self.temperature(k)):
                current = candidate
        return current

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        results = self.evidence(space, history)
        if not results:
            return fill_unseen(space, seen, n, rng)
        current = self.current(space, results).arch
        proposals: list[dict] = []
        for steps in range(1, self.max_steps + 1):
            neighbour = functools.partial(walk, space, current, steps)
            proposals += propose_unseen(space, seen, n - len(proposals), rng, neighbour, fill=False)
            if len(proposals) == n:
                return proposals
        return proposals + fill_unseen(space, seen, n - len(proposals), rng)


def walk(space, arch: dict, steps: int, rng: random.Random) -> dict:
    """``steps`` successive mutations of ``arch``."""
    for _ in range(steps):
        arch = space.mutate(arch, rng)
    return arch
