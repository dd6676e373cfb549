"""The NAS core: search spaces, strategies, early stopping and Pareto helpers.

Plain Python + torch. Nothing in this package imports Django, so it can be
tested and reused (for example by an exported model bundle) on its own.
"""
from .errors import StrategyError
from .space import Decision, InvalidArchitecture, SearchSpace
from .registry import SPACES, STRATEGIES, build_model, get_space, get_strategy
from .strategy import Strategy, Trial

__all__ = [
    "Decision", "InvalidArchitecture", "SearchSpace", "Strategy", "Trial",
    "SPACES", "STRATEGIES", "StrategyError", "build_model", "get_space", "get_strategy",
]
