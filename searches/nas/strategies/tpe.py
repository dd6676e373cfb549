"""TPE through Optuna's TPESampler, over a study rebuilt from the history on every ask."""
from __future__ import annotations

import warnings

from .common import HistoryStrategy, fill_unseen, seen_hashes

PENDING = ("queued", "running")


def _optuna():
    import optuna  # imported on first use: it is slow to import and only TPE needs it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class TPE(HistoryStrategy):
    """Tree-structured Parzen Estimator (Bergstra et al. 2011) via Optuna.

    Each ``ask`` builds a fresh in-memory study: every decision is a
    categorical parameter over its choice indices; finished trials (warm
    start first) are added as complete with their score, queued and running
    ones as running, so the sampler's constant liar steers away from what is
    already being trained; failed, pruned and cancelled trials carry no
    value and are left out. The sampler's seed is drawn from ``rng``. A
    suggestion that is invalid or already in the history is left running
    too and the sampler asked again (up to ``retries`` times), then a random
    unseen architecture fills the slot. The first ``n_startup`` trials are
    random (Optuna's startup phase).

    ``multivariate`` is off by default, as in Optuna: on the tabular digits
    benchmark (``bench/tabular``) the joint model did worse than random
    search while the independent one beat it.
    """

    name = "tpe"
    label = "TPE (Optuna)"

    def __init__(self, n_startup: int = 10, n_ei_candidates: int = 24, multivariate: bool = False,
                 retries: int = 20, warm_start: list | None = None):
        super().__init__(warm_start)
        self.n_startup = int(n_startup)
        self.n_ei_candidates = int(n_ei_candidates)
        self.multivariate = bool(multivariate)
        self.retries = int(retries)

    def own_settings(self):
        return {"n_startup": self.n_startup, "n_ei_candidates": self.n_ei_candidates,
                "multivariate": self.multivariate, "retries": self.retries}

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        optuna = _optuna()
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import TrialState, create_trial

        distributions = {d.name: CategoricalDistribution(tuple(range(len(d.choices))))
                         for d in space.decisions}

        def params(arch):
            return dict(zip((d.name for d in space.decisions), space.encode(space.canonical(arch))))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=rng.getrandbits(32), n_startup_trials=self.n_startup,
                n_ei_candidates=self.n_ei_candidates, multivariate=self.multivariate,
                constant_liar=True)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for trial in self.prior(space) + list(history):
            if trial.finished:
                study.add_trial(create_trial(value=float(trial.score), params=params(trial.arch),
                                             distributions=distributions))
            elif trial.state in PENDING:
                study.add_trial(create_trial(state=TrialState.RUNNING, params=params(trial.arch),
                                             distributions=distributions))

        seen = seen_hashes(space, history)
        found = []
        for _ in range(n):
            arch = self._suggest_unseen(space, study, distributions, seen)
            if arch is None:
                extra = fill_unseen(space, seen, 1, rng)
                if not extra:
                    break
                arch = extra[0]
                study.add_trial(create_trial(state=TrialState.RUNNING, params=params(arch),
                                             distributions=distributions))
            found.append(arch)
        return found

    def _suggest_unseen(self, space, study, distributions, seen):
        """A new valid architecture from the sampler; None if ``retries`` suggestions gave none.

        Every suggestion stays in the study as a running trial, the rejected
        ones included: the constant liar then steers the next suggestion
        away from them. (Marking them failed would make the sampler ignore
        them, and in a small space it would suggest the same seen
        architecture again and again.)
        """
        for _ in range(self.retries):
            trial = study.ask(distributions)
            arch = space.decode([trial.params[d.name] for d in space.decisions])
            if space.is_valid(arch):
                arch = space.validate(arch)
                h = space.arch_hash(arch)
                if h not in seen:
                    seen.add(h)
                    return arch
        return None
