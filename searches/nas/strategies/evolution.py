"""Regularized (aging) evolution, Real et al. 2019 ("AmoebaNet")."""
from __future__ import annotations

from .common import PopulationStrategy, fitness, read_objectives, tournament


class RegularizedEvolution(PopulationStrategy):
    """Tournament among the youngest ``population`` results, then mutate the winner.

    The population is the last ``population`` finished trials in history
    order (warm-start trials count as older than the search's own); older
    ones age out even if they were good, which is what regularises the
    search. Each child: draw ``sample`` members at random, take the fittest,
    apply one mutation (one decision changed). Until ``population`` trials
    have finished, proposals are random; a warm start is the first population.

    With ``objectives`` (e.g. ``["val_acc", "latency_ms:min"]``) fitness is
    NSGA-II's order within the population: Pareto rank, then crowding
    distance; trials lacking one of those metrics are left out.
    """

    name = "evolution"
    label = "Regularized evolution"

    def __init__(self, population: int = 20, sample: int = 5, objectives: list | None = None,
                 warm_start: list | None = None):
        super().__init__(warm_start)
        if population < 1 or sample < 1:
            raise ValueError("population and sample must be at least 1")
        self.population = int(population)
        self.sample = int(sample)
        self.objectives = read_objectives(objectives)

    def own_settings(self):
        result = {"population": self.population, "sample": self.sample}
        if self.objectives:
            result["objectives"] = [o.to_dict() for o in self.objectives]
        return result

    def parent_picker(self, space, results, seen):
        population = results[-self.population:]
        keys = fitness(population, self.objectives)

        def child(rng):
            parent = tournament(population, keys, self.sample, rng)
            return space.mutate(parent.arch, rng)

        return child
