"""Names users pick in the form, mapped to spaces and strategies."""
from __future__ import annotations

from torch import nn

from .cell import CellSpace
from .chain import ChainSpace
from .mobile import MobileSpace
from .space import SearchSpace
from .strategy import Strategy
from .text import TextSpace
from .strategies import (GeneticAlgorithm, GridSearch, LocalSearch, PredictorSearch, RandomSearch,
                         Reinforce, RegularizedEvolution, SimulatedAnnealing, TPE)

SPACES: dict[str, type[SearchSpace]] = {
    cls.name: cls for cls in (ChainSpace, CellSpace, MobileSpace, TextSpace)}
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomSearch, GridSearch, RegularizedEvolution, GeneticAlgorithm,
                              SimulatedAnnealing, Reinforce, TPE, LocalSearch, PredictorSearch)
}


def get_space(name: str, settings: dict | None = None) -> SearchSpace:
    try:
        cls = SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; choose one of {sorted(SPACES)}") from None
    return cls(**(settings or {}))


def get_strategy(name: str, settings: dict | None = None) -> Strategy:
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}") from None
    return cls(**(settings or {}))


def build_model(space: str, space_settings: dict, arch: dict, input_shape, num_classes: int) -> nn.Module:
    """Rebuild the network of a candidate: the one documented way to get an ``nn.Module``.

    With a checkpoint ``ckpt = torch.load(path, weights_only=True)``::

        model = build_model(ckpt["space"], ckpt["space_settings"], ckpt["arch"],
                            ckpt["input_shape"], ckpt["num_classes"])
        model.load_state_dict(ckpt["state_dict"])
    """
    return get_space(space, space_settings).build(arch, tuple(input_shape), int(num_classes))
