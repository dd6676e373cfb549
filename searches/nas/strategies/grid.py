"""Grid search: every architecture of the space once, in a fixed order."""
from __future__ import annotations

import itertools

from .common import HistoryStrategy, codes_matrix, grid_index, iter_grid, seen_hashes


class GridSearch(HistoryStrategy):
    """Walks the space in the order of its integer encoding, the last decision fastest.

    Invalid decision combinations and non-canonical duplicates are skipped,
    so each distinct architecture comes up once. Nothing is enumerated ahead
    of time: the walk resumes just after the furthest grid position found in
    the history, and wraps around to pick up anything that was skipped (for
    example architectures added to the search by hand) before it reports the
    space exhausted. The rng and the warm start are not used.
    """

    name = "grid"
    label = "Grid search"

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        start = furthest_position(space, history) + 1
        found = []
        for _, arch in itertools.chain(iter_grid(space, start), iter_grid(space, 0, start)):
            h = space.arch_hash(arch)
            if h in seen:
                continue
            seen.add(h)
            found.append(arch)
            if len(found) == n:
                break
        return found


def furthest_position(space, history) -> int:
    """The largest grid position in ``history`` (-1 if none), from the cached codes when it can."""
    try:
        codes = codes_matrix(space, history)
    except (KeyError, ValueError):  # a canonical form outside the choices: no grid position
        positions = [p for p in (grid_index(space, t.arch) for t in history) if p is not None]
        return max(positions, default=-1)
    index = 0
    for j, d in enumerate(space.decisions):
        index = index * len(d.choices) + codes[:, j].astype(object)
    return int(max(index, default=-1)) if len(history) else -1
