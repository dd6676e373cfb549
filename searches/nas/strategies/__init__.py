"""Search strategies beyond random search, one module each.

All follow the stateless ask/tell contract of ``searches.nas.strategy``
and accept ``warm_start`` (see ``HistoryStrategy``).
"""
from .annealing import SimulatedAnnealing
from .common import HistoryStrategy
from .evolution import RegularizedEvolution
from .genetic import GeneticAlgorithm
from .grid import GridSearch
from .local_search import LocalSearch
from .predictor import PredictorSearch
from .random_search import RandomSearch
from .reinforce import Reinforce
from .tpe import TPE

__all__ = ["GeneticAlgorithm", "GridSearch", "HistoryStrategy", "LocalSearch", "PredictorSearch",
           "RandomSearch", "Reinforce", "RegularizedEvolution", "SimulatedAnnealing", "TPE"]
