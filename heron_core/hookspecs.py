"""The six extension points of Heron, as pluggy hook specifications.

A plugin is a module registered under the entry-point group ``heron``; it implements any of
these hooks with ``@heron_core.hookimpl`` and returns a list of :class:`~heron_core.registry.PluginSpec`.
"""

from __future__ import annotations

import pluggy

PROJECT = "heron"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def heron_targets():
    """Hardware targets: specs whose factory builds a :class:`heron_core.target.Target`."""


@hookspec
def heron_operators():
    """Workloads: specs whose factory is an :class:`heron_core.operator.Operator` subclass."""


@hookspec
def heron_searchers():
    """Search algorithms: specs whose factory builds a :class:`heron_core.searcher.Searcher`."""


@hookspec
def heron_cost_models():
    """Cost models: specs whose factory builds a :class:`heron_core.cost_model.CostModel`."""


@hookspec
def heron_runners():
    """Runners: specs whose factory builds a :class:`heron_core.runner.Runner`."""


@hookspec
def heron_frontends():
    """Model importers: specs whose factory builds a :class:`heron_core.network.Frontend` (a model
    file or a named network -> a :class:`heron_core.network.Network` of tunable tasks)."""
