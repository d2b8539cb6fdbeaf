"""Entry point of the ``heron-search-ga`` distribution."""

from heron_core import PluginSpec, hookimpl
from heron_search_ga.cga import CGAParams, CGASearcher
from heron_search_ga.common import EvolutionParams
from heron_search_ga.ga import GASearcher
from heron_search_ga.random_search import RandomParams, RandomSearcher
from heron_search_ga.sa import SAParams, SASearcher


@hookimpl
def heron_searchers():
    return [
        PluginSpec("searcher", "cga", CGASearcher, CGAParams,
                   "Heron's constraint-based GA: crossover of key knobs through the CSP, model-guided"),
        PluginSpec("searcher", "ga", GASearcher, EvolutionParams,
                   "plain GA on knob values, invalid children rejected (baseline)"),
        PluginSpec("searcher", "sa", SASearcher, SAParams,
                   "simulated annealing on the cost model with Metropolis acceptance (baseline)"),
        PluginSpec("searcher", "random", RandomSearcher, RandomParams,
                   "uniform knob values, invalid ones rejected (baseline: what constraints buy)"),
    ]
