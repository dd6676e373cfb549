"""Predictor-guided search in the manner of BANANAS (White et al. 2021): an ensemble of small
neural predictors picks which architecture to train next."""
from __future__ import annotations

import numpy as np
from threadpoolctl import ThreadpoolController

from .common import HistoryStrategy, codes_matrix, fill_unseen, neighbours, seen_hashes


_THREADPOOLS: list = []


def one_blas_thread():
    """A context with one BLAS thread. These products are small, and a multi-threaded BLAS on a
    busy machine made them a hundred times slower. (The controller is made once: scanning the
    loaded libraries costs about a millisecond.)"""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


def one_hot(space, codes: np.ndarray) -> np.ndarray:
    """The adjacency encoding: one indicator per (decision, choice); for the cell space, the op on each edge."""
    sizes = [len(d.choices) for d in space.decisions]
    offsets = np.cumsum([0] + sizes[:-1])
    x = np.zeros((len(codes), sum(sizes)))
    if len(codes):
        x[np.arange(len(codes))[:, None], codes + offsets] = 1.0
    return x


class Ensemble:
    """``members`` one-hidden-layer networks, each with its own seeded random ReLU layer and an
    output layer fitted by ridge regression (closed form: no iterations, microseconds to fit).

    The members differ only in their hidden layers, so their spread is a
    measure of how sure the ensemble is away from the data, which is what
    the acquisition uses.
    """

    def __init__(self, inputs: int, hidden: int, members: int, ridge: float):
        self.layers = [np.random.default_rng(m).normal(size=(inputs + 1, hidden)) / np.sqrt(inputs / 4)
                       for m in range(members)]
        self.ridge = ridge
        self.heads = []

    def _features(self, x: np.ndarray, layer: np.ndarray) -> np.ndarray:
        hidden = np.maximum(np.hstack([x, np.ones((len(x), 1))]) @ layer, 0.0)
        return np.hstack([x, hidden, np.ones((len(x), 1))])

    def fit(self, x: np.ndarray, y: np.ndarray) -> "Ensemble":
        self.heads = []
        for layer in self.layers:
            f = self._features(x, layer)
            gram = f.T @ f + self.ridge * np.eye(f.shape[1])
            self.heads.append(np.linalg.solve(gram, f.T @ y))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(members, n) predictions."""
        return np.stack([self._features(x, layer) @ head for layer, head in zip(self.layers, self.heads)])


class PredictorSearch(HistoryStrategy):
    """Train the candidate an ensemble of predictors rates best.

    After ``n_initial`` random trials, every ask fits an ``Ensemble`` of
    ``members`` small networks (``hidden`` units) to the finished trials'
    standardised scores (warm start included), on the one-hot (adjacency)
    encoding of the decisions. Candidates are the unseen one-decision
    neighbours of the ``parents`` best trials plus ``random_candidates``
    random unseen architectures; the ``n`` with the largest upper confidence
    bound, ensemble mean plus ``exploration`` times the ensemble's standard
    deviation, are proposed (pending ones are among the seen, so a batch
    never repeats what is being trained).
    """

    name = "predictor"
    label = "Predictor-guided (BANANAS-like)"

    def __init__(self, n_initial: int = 10, members: int = 5, hidden: int = 64, ridge: float = 1.0,
                 exploration: float = 0.5, parents: int = 5, random_candidates: int = 50,
                 warm_start: list | None = None):
        super().__init__(warm_start)
        if n_initial < 2 or members < 1 or hidden < 1 or ridge <= 0 or parents < 0 or random_candidates < 0:
            raise ValueError("n_initial >= 2, members and hidden >= 1, ridge > 0, parents and "
                             "random_candidates >= 0")
        self.n_initial, self.members, self.hidden = int(n_initial), int(members), int(hidden)
        self.ridge, self.exploration = float(ridge), float(exploration)
        self.parents, self.random_candidates = int(parents), int(random_candidates)

    def own_settings(self):
        return {"n_initial": self.n_initial, "members": self.members, "hidden": self.hidden,
                "ridge": self.ridge, "exploration": self.exploration, "parents": self.parents,
                "random_candidates": self.random_candidates}

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        results = self.evidence(space, history)
        if len(results) < self.n_initial:
            return fill_unseen(space, seen, n, rng)
        candidates = self.candidates(space, results, seen, rng)
        if not candidates:
            return fill_unseen(space, seen, n, rng)
        scores = np.array([float(t.score) for t in results])
        y = (scores - scores.mean()) / (scores.std() or 1.0)
        inputs = sum(len(d.choices) for d in space.decisions)
        x = one_hot(space, np.array([space.encode(a) for a in candidates]).reshape(len(candidates), -1))
        with one_blas_thread():
            model = Ensemble(inputs, self.hidden, self.members, self.ridge)
            predictions = model.fit(one_hot(space, codes_matrix(space, results)), y).predict(x)
        bound = predictions.mean(axis=0) + self.exploration * predictions.std(axis=0)
        chosen = [candidates[i] for i in np.argsort(-bound, kind="stable")[:n]]
        for arch in chosen:
            seen.add(space.arch_hash(arch))
        return chosen + fill_unseen(space, seen, n - len(chosen), rng)

    def candidates(self, space, results, seen, rng) -> list[dict]:
        """Unseen neighbours of the best trials, then random unseen architectures (no duplicates)."""
        best_first = sorted(range(len(results)), key=lambda i: (-results[i].score, i))
        found, hashes = [], set(seen)
        for i in best_first[:self.parents]:
            for arch in neighbours(space, results[i].arch):
                h = space.arch_hash(arch)
                if h not in hashes:
                    hashes.add(h)
                    found.append(arch)
        found += fill_unseen(space, hashes, self.random_candidates, rng)
        return found
