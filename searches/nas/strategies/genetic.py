"""A steady-state genetic algorithm with tournament selection and elitism."""
from __future__ import annotations

from .common import PopulationStrategy, fitness, read_objectives, tournament


class GeneticAlgorithm(PopulationStrategy):
    """Crossover of two tournament winners, then mutation.

    The breeding pool is the last ``population`` finished trials plus the
    ``elitism`` best finished trials of all time (the elites never age out;
    since no architecture is trained twice, keeping an elite means keeping
    it as a parent). Each child: two parents by tournaments of
    ``tournament`` members, uniform crossover with probability
    ``crossover_rate`` (otherwise a copy of the first parent), then one
    mutation with probability ``mutation_rate``; a child that is already in
    the history is mutated again. Proposals are random until ``population``
    trials have finished.

    With ``objectives`` fitness is NSGA-II's order (Pareto rank, then
    crowding distance), and the elites are the best of that order.
    """

    name = "genetic"
    label = "Genetic algorithm"

    def __init__(self, population: int = 5, tournament: int = 3, crossover_rate: float = 0.9,
                 mutation_rate: float = 0.5, elitism: int = 2, objectives: list | None = None,
                 warm_start: list | None = None):
        super().__init__(warm_start)
        if population < 2 or tournament < 1 or elitism < 0:
            raise ValueError("population must be at least 2, tournament at least 1, elitism at least 0")
        if not (0 <= crossover_rate <= 1 and 0 <= mutation_rate <= 1):
            raise ValueError("crossover_rate and mutation_rate are probabilities")
        self.population = int(population)
        self.tournament = int(tournament)
        self.crossover_rate = float(crossover_rate)
        self.mutation_rate = float(mutation_rate)
        self.elitism = int(elitism)
        self.objectives = read_objectives(objectives)

    def own_settings(self):
        result = {"population": self.population, "tournament": self.tournament,
                  "crossover_rate": self.crossover_rate, "mutation_rate": self.mutation_rate,
                  "elitism": self.elitism}
        if self.objectives:
            result["objectives"] = [o.to_dict() for o in self.objectives]
        return result

    def breeding_pool(self, results):
        recent_start = max(0, len(results) - self.population)
        keys = fitness(results, self.objectives)
        best_first = sorted(range(len(results)), key=lambda i: keys[i], reverse=True)
        elites = [results[i] for i in best_first[:self.elitism] if i < recent_start]
        return elites + results[recent_start:]

    def parent_picker(self, space, results, seen):
        pool = self.breeding_pool(results)
        keys = fitness(pool, self.objectives)

        def child(rng):
            first = tournament(pool, keys, self.tournament, rng)
            second = tournament(pool, keys, self.tournament, rng)
            arch = first.arch
            if rng.random() < self.crossover_rate:
                arch = space.crossover(first.arch, second.arch, rng)
            if rng.random() < self.mutation_rate or space.arch_hash(arch) in seen:
                arch = space.mutate(arch, rng)
            return arch

        return child
