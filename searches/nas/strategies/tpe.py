"""TPE for categorical decisions, in numpy: counts over the history, no study to rebuild."""
from __future__ import annotations

import math

import numpy as np

from .common import HistoryStrategy, codes_matrix, fill_unseen, seen_hashes

PENDING = ("queued", "running")


def below_count(n: int) -> int:
    """How many of ``n`` finished trials form the good group: Optuna's default ``gamma``."""
    return min(math.ceil(0.1 * n), 25)


def recency_weights(n: int) -> np.ndarray:
    """Optuna's default weights: the last 25 trials weigh 1, older ones ramp down to 1/n."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - 25), np.ones(25)])


class TPE(HistoryStrategy):
    """Tree-structured Parzen Estimator (Bergstra et al. 2011) over categorical decisions.

    Modelled on Optuna's independent ``TPESampler`` and its defaults (the
    split, the recency weights, the prior, the constant liar), computed
    directly with numpy rather than copied: the finished trials (warm start first) are split into
    the best ``min(ceil(0.1 n), 25)`` ("below") and the rest ("above"); for
    each decision, ``l`` and ``g`` are the recency-weighted choice
    frequencies of the two groups, each mixed with a uniform prior of weight
    ``prior_weight``. Queued and running trials join the "above" group
    (Optuna's constant liar), so the model steers away from what is being
    trained. ``n_ei_candidates`` architectures are drawn from ``l`` and the
    one with the largest ``log l - log g`` that is valid and not in the
    history is proposed; when none of them is, another ``n_ei_candidates``
    are drawn (up to ``retries`` rounds) before a random unseen architecture
    fills the slot, so a long search never loops on seen proposals. The
    first ``n_startup`` trials are random.

    An ask reads the history once, as integer codes cached by architecture
    hash, so its cost grows only with a cheap pass over the history; an
    Optuna study rebuilt at every ask cost 170 ms at a history of 100.
    """

    name = "tpe"
    label = "TPE"

    def __init__(self, n_startup: int = 10, n_ei_candidates: int = 24, prior_weight: float = 1.0,
                 retries: int = 20, warm_start: list | None = None, multivariate: bool = False):
        # ``multivariate`` was a setting of the Optuna-based TPE; searches stored with it still load.
        super().__init__(warm_start)
        if n_startup < 0 or n_ei_candidates < 1 or prior_weight <= 0 or retries < 1:
            raise ValueError("n_startup >= 0, n_ei_candidates >= 1, prior_weight > 0 and retries >= 1")
        self.n_startup = int(n_startup)
        self.n_ei_candidates = int(n_ei_candidates)
        self.prior_weight = float(prior_weight)
        self.retries = int(retries)

    def own_settings(self):
        return {"n_startup": self.n_startup, "n_ei_candidates": self.n_ei_candidates,
                "prior_weight": self.prior_weight, "retries": self.retries}

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        results = self.evidence(space, history)
        if len(results) < max(self.n_startup, 1):
            return fill_unseen(space, seen, n, rng)
        below, above = self.densities(space, results, [t for t in history if t.state in PENDING])
        np_rng = np.random.default_rng(rng.getrandbits(64))
        found = []
        for _ in range(n):
            arch = self._best_unseen(space, below, above, seen, np_rng)
            if arch is None:
                extra = fill_unseen(space, seen, 1, rng)
                if not extra:
                    break
                arch = extra[0]
            found.append(arch)
            for counts, code in zip(above, space.encode(arch)):  # the constant liar for this batch
                counts[code] += 1.0
        return found

    def densities(self, space, results, pending):
        """Weighted choice counts per decision of the good group and of the rest (plus pending)."""
        codes = codes_matrix(space, results)
        scores = np.array([float(t.score) for t in results])
        weights = recency_weights(len(results))
        order = np.argsort(-scores, kind="stable")
        is_below = np.zeros(len(results), dtype=bool)
        is_below[order[:below_count(len(results))]] = True
        pending_codes = codes_matrix(space, pending)
        below, above = [], []
        for j, d in enumerate(space.decisions):
            k = len(d.choices)
            below.append(np.bincount(codes[is_below, j], weights[is_below], minlength=k))
            above.append(np.bincount(codes[~is_below, j], weights[~is_below], minlength=k)
                         + np.bincount(pending_codes[:, j], minlength=k))
        return below, above

    def _log_density(self, counts: np.ndarray) -> np.ndarray:
        k = len(counts)
        return np.log((counts + self.prior_weight / k) / (counts.sum() + self.prior_weight))

    def _best_unseen(self, space, below, above, seen, np_rng):
        log_l = [self._log_density(c) for c in below]
        log_g = [self._log_density(c) for c in above]
        for _ in range(self.retries):
            columns = [np_rng.choice(len(ll), size=self.n_ei_candidates, p=np.exp(ll))
                       for ll in log_l]
            candidates = np.stack(columns, axis=1)
            gain = sum(log_l[j][candidates[:, j]] - log_g[j][candidates[:, j]] for j in range(len(log_l)))
            for i in np.argsort(-gain, kind="stable"):
                arch = space.decode(candidates[i].tolist())
                if not space.is_valid(arch):
                    continue
                arch = space.validate(arch)
                h = space.arch_hash(arch)
                if h not in seen:
                    seen.add(h)
                    return arch
        return None
