"""REINFORCE with a table of logits: the policy-gradient controller of Zoph & Le, without the RNN."""
from __future__ import annotations

import numpy as np

from .common import HistoryStrategy, propose_unseen, seen_hashes


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


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
        """Choice probabilities per decision after learning from ``results`` in order."""
        logits = [np.zeros(len(d.choices)) for d in space.decisions]
        baseline = spread = None
        decay = self.baseline_decay
        for trial in results:
            reward = float(trial.score)
            if baseline is None:
                baseline = reward
                continue
            deviation = reward - baseline
            spread = abs(deviation) if spread is None else decay * spread + (1 - decay) * abs(deviation)
            advantage = float(np.clip(deviation / spread, -3, 3)) if spread > 0 else 0.0
            codes = space.encode(space.canonical(trial.arch))
            for row, code in zip(logits, codes):
                gradient = -softmax(row)
                gradient[code] += 1.0
                row += self.learning_rate * advantage * gradient
            baseline = decay * baseline + (1 - decay) * reward
        return [softmax(row) for row in logits]

    def ask(self, space, history, n, rng):
        if n <= 0:
            return []
        seen = seen_hashes(space, history)
        probabilities = self.policy(space, self.evidence(space, history))

        def draw(rng):
            return {d.name: rng.choices(d.choices, weights=p.tolist())[0]
                    for d, p in zip(space.decisions, probabilities)}

        return propose_unseen(space, seen, n, rng, draw)
