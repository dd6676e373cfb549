"""Local search over one-decision neighbours (White et al. 2021, "Local search is state of the art for NAS benchmarks")."""
from __future__ import annotations

from .common import HistoryStrategy, fill_unseen, neighbours, seen_hashes


class LocalSearch(HistoryStrategy):
    """Train the untried neighbours of the best architecture so far.

    After ``n_initial`` random trials have finished, each proposal is an
    unseen architecture one decision away from the best finished trial
    (warm start included), in random order. When every neighbour of the best
    has been tried or is being trained, the search is at a local optimum and
    moves on to the neighbours of the next best trial, and so on through the
    ``max_parents`` best; past those it proposes a random architecture (the
    paper's restart). Everything follows from the history: a hill climb with
    first-improvement moves whose state is the ranking of the results.
    """

    name = "local"
    label = "Local search"

    def __init__(self, n_initial: int = 10, max_parents: int = 20, warm_start: list | None = None):
        super().__init__(warm_start)
        if n_initial < 1 or max_parents < 1:
            raise ValueError("n_initial and max_parents must be at least 1")
        self.n_initial = int(n_initial)
        self.max_parents = int(max_parents)

    def own_settings(self):
        return {"n_initial": self.n_initial, "max_parents": self.max_parents}

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        results = self.evidence(space, history)
        if len(results) < self.n_initial:
            return fill_unseen(space, seen, n, rng)
        best_first = sorted(range(len(results)), key=lambda i: (-results[i].score, i))
        found = []
        for i in best_first[:self.max_parents]:
            fresh = [a for a in neighbours(space, results[i].arch) if space.arch_hash(a) not in seen]
            rng.shuffle(fresh)
            for arch in fresh[:n - len(found)]:
                seen.add(space.arch_hash(arch))
                found.append(arch)
            if len(found) == n:
                return found
        return found + fill_unseen(space, seen, n - len(found), rng)
