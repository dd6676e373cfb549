"""REINFORCE with a table of logits: the policy-gradient controller of Zoph & Le, without the RNN."""
from __future__ import annotations

import numpy as np

from .common import HistoryStrategy, codes_matrix, propose_unseen, replay, seen_hashes, space_key


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Softmax of each row; -inf entries get probability 0."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class Reinforce(HistoryStrategy):
    """Each decision is drawn from its own categorical distribution, learned by REINFORCE.

    The policy is rebuilt on every ``ask`` by replaying the finished trials
    in order (warm start first), starting from uniform logits; replay uses
    no randomness, so the same history always gives the same policy. For
    each trial with reward ``r`` (its score):

    * ``advantage = (r - baseline) / spread``, where ``baseline`` is a moving
      average of earlier rewards (``baseline_decay``) and ``spread`` a moving
      average of ``|r - baseline|``, which makes the step size independent
      of the scale of the scores; clipped to [-3, 3];
    * every decision's logits move by ``learning_rate * advantage *
      (onehot(choice) - softmax(logits))``, the gradient of ``log p(arch)``.

    The first trial only sets the baseline. New architectures are sampled
    from the policy; when it keeps proposing seen ones, random unseen
    architectures fill in.
    """

    name = "reinforce"
    label = "REINFORCE controller"

    def __init__(self, learning_rate: float = 0.1, baseline_decay: float = 0.9,
                 warm_start: list | None = None):
        super().__init__(warm_start)
        if learning_rate <= 0 or not 0 <= baseline_decay < 1:
            raise ValueError("learning_rate must be positive and baseline_decay in [0, 1)")
        self.learning_rate = float(learning_rate)
        self.baseline_decay = float(baseline_decay)

    def own_settings(self):
        return {"learning_rate": self.learning_rate, "baseline_decay": self.baseline_decay}

    def policy(self, space, results) -> list[np.ndarray]:
        """Choice probabilities per decision after learning from ``results`` in order.

        The logits of all decisions are one padded (decisions, choices) array
        whose padding stays at -inf. The replay resumes from the state cached
        for the longest already replayed prefix of ``results`` (``replay``).
        """
        sizes = [len(d.choices) for d in space.decisions]
        codes = codes_matrix(space, results)
        rows = np.arange(len(sizes))

        def start():
            logits = np.full((len(sizes), max(sizes, default=1)), -np.inf)
            for j, k in enumerate(sizes):
                logits[j, :k] = 0.0
            return logits, None, None

        def step(state, k, trial):
            logits, baseline, spread = state
            reward = float(trial.score)
            if baseline is None:
                return logits, reward, None
            deviation = reward - baseline
            spread = abs(deviation) if spread is None else decay * spread + (1 - decay) * abs(deviation)
            advantage = min(3.0, max(-3.0, deviation / spread)) if spread > 0 else 0.0
            if advantage:
                gradient = -softmax_rows(logits)
                gradient[rows, codes[k]] += 1.0
                logits = logits + self.learning_rate * advantage * gradient  # -inf padding stays -inf
            return logits, decay * baseline + (1 - decay) * reward, spread

        decay = self.baseline_decay
        owner = ("reinforce", self.learning_rate, decay, space_key(space))
        logits = replay(owner, space, results, start, step)[0]
        probabilities = softmax_rows(logits)
        return [probabilities[j, :k] for j, k in enumerate(sizes)]

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        probabilities = self.policy(space, self.evidence(space, history))

        def draw(rng):
            return {d.name: rng.choices(d.choices, weights=p.tolist())[0]
                    for d, p in zip(space.decisions, probabilities)}

        return propose_unseen(space, seen, n, rng, draw)
