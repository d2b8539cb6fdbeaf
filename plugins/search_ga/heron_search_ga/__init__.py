"""Heron searchers: ``cga`` and the ``ga``, ``sa``, ``random`` baselines (``crand`` is in the core)."""
