"""The generic part of every search space.

A space is a list of named categorical decisions plus ``build``. Sampling,
mutation, crossover, the integer encoding, the canonical hash and the
genotype string are defined once here and shared by every space.
"""
from __future__ import annotations

import functools
import hashlib
import json
import random
import weakref
from dataclasses import dataclass
from typing import Any

from torch import nn


class InvalidArchitecture(ValueError):
    """An architecture that does not belong to its space, or cannot be trained."""


@dataclass(frozen=True)
class Decision:
    name: str
    choices: tuple

    def __post_init__(self):
        if not self.choices:
            raise ValueError(f"decision {self.name!r} has no choices")


def _matching_choice(decision: Decision, value: Any):
    """The choice equal to ``value``; bools only match bools (``True == 1`` in Python)."""
    for choice in decision.choices:
        if choice == value and isinstance(choice, bool) == isinstance(value, bool):
            return choice
    raise InvalidArchitecture(f"{decision.name}={value!r} is not one of {list(decision.choices)}")


# What each network a space built was built from: (space name, space settings, arch,
# input shape, number of classes). A model bundle rebuilds the network from it.
BUILT_FROM: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _remembering(build):
    @functools.wraps(build)
    def build_and_remember(self, arch, input_shape, num_classes):
        model = build(self, arch, input_shape, num_classes)
        BUILT_FROM[model] = (self.name, self.settings(), dict(arch), tuple(input_shape), int(num_classes))
        return model
    return build_and_remember


class SearchSpace:
    """Base class: subclasses set ``name`` and ``decisions`` and implement ``build``.

    Subclasses may override ``canonical`` (to give decisions that do not
    matter a fixed value, so equivalent architectures hash alike) and
    ``check`` (to refuse architectures that are well-formed but untrainable).
    """

    name: str = ""
    label: str = ""
    # What the built network eats: "image" (float N,C,H,W) or "text" (long N,L token ids).
    modality: str = "image"
    decisions: list[Decision] = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            cls.build = _remembering(cls.__dict__["build"])

    # --- what a subclass provides -------------------------------------
    def build(self, arch: dict, input_shape: tuple, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def canonical(self, arch: dict) -> dict:
        return dict(arch)

    def check(self, arch: dict) -> None:
        """Raise InvalidArchitecture for architectures that must never be trained."""

    def settings(self) -> dict:
        """The constructor arguments that recreate this space (stored with a search)."""
        return {}

    # --- shared by every space ----------------------------------------
    def validate(self, arch: Any) -> dict:
        """Return the canonical form of ``arch`` or raise InvalidArchitecture."""
        if not isinstance(arch, dict):
            raise InvalidArchitecture("an architecture is a JSON object of decisions")
        names = [d.name for d in self.decisions]
        missing = [n for n in names if n not in arch]
        extra = [k for k in arch if k not in names]
        if missing:
            raise InvalidArchitecture(f"missing decisions: {', '.join(missing)}")
        if extra:
            raise InvalidArchitecture(f"unknown decisions for space {self.name}: {', '.join(map(str, extra))}")
        # Replace each value by the choice object it equals, so that e.g. a
        # JSON ``true`` never passes for the choice ``1`` and hashes apart from it.
        arch = {d.name: _matching_choice(d, arch[d.name]) for d in self.decisions}
        self.check(arch)
        return self.canonical(arch)

    def is_valid(self, arch: Any) -> bool:
        try:
            self.validate(arch)
        except InvalidArchitecture:
            return False
        return True

    def arch_hash(self, arch: dict) -> str:
        return self.canonical_hash(self.canonical(arch))

    @staticmethod
    def canonical_hash(canonical_arch: dict) -> str:
        """The hash of an architecture already in canonical form (``validate``'s result)."""
        text = json.dumps(canonical_arch, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def genotype(self, arch: dict) -> str:
        arch = self.canonical(arch)
        return "|".join(f"{d.name}={arch[d.name]}" for d in self.decisions)

    def size(self) -> int:
        """Number of decision combinations (an upper bound on distinct architectures)."""
        total = 1
        for d in self.decisions:
            total *= len(d.choices)
        return total

    def sample(self, rng: random.Random, max_tries: int = 1000) -> dict:
        for _ in range(max_tries):
            arch = {d.name: rng.choice(d.choices) for d in self.decisions}
            try:
                return self.validate(arch)
            except InvalidArchitecture:
                continue
        raise InvalidArchitecture(f"could not sample a valid architecture from {self.name}")

    def mutate(self, arch: dict, rng: random.Random, max_tries: int = 20) -> dict:
        """Change one decision to another of its choices, keeping the result valid.

        ``max_tries`` random changes first (nearly always enough); in a space
        where few changes are valid, then a random one of all the valid
        one-decision changes; a random architecture only when there is none.
        """
        arch = self.canonical(arch)
        own_hash = self.arch_hash(arch)
        mutable = [d for d in self.decisions if len(d.choices) > 1]
        for _ in range(max_tries if mutable else 0):
            d = rng.choice(mutable)
            child = dict(arch)
            child[d.name] = rng.choice([c for c in d.choices if c != arch[d.name]])
            try:
                child = self.validate(child)
            except InvalidArchitecture:
                continue
            if self.canonical_hash(child) != own_hash:
                return child
        valid = self._valid_changes(arch, own_hash, mutable)
        return rng.choice(valid) if valid else self.sample(rng)

    def _valid_changes(self, arch: dict, own_hash: str, mutable: list[Decision]) -> list[dict]:
        found = {}
        for d in mutable:
            for choice in d.choices:
                if choice == arch[d.name]:
                    continue
                try:
                    child = self.validate({**arch, d.name: choice})
                except InvalidArchitecture:
                    continue
                found.setdefault(self.canonical_hash(child), child)
        found.pop(own_hash, None)
        return list(found.values())

    def crossover(self, a: dict, b: dict, rng: random.Random, max_tries: int = 100) -> dict:
        """Uniform crossover: each decision from one parent or the other."""
        for _ in range(max_tries):
            child = {d.name: (a if rng.random() < 0.5 else b)[d.name] for d in self.decisions}
            if self.is_valid(child):
                return self.canonical(child)
        return self.canonical(a)

    def encode(self, arch: dict) -> list[int]:
        """Integer encoding: the index of each decision's choice."""
        return [d.choices.index(arch[d.name]) for d in self.decisions]

    def decode(self, codes: list[int]) -> dict:
        return self.canonical({d.name: d.choices[i] for d, i in zip(self.decisions, codes)})
