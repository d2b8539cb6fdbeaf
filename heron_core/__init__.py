"""Heron: constrained auto-tuning of tensor operators on Apache TVM."""

from heron_core.build import load_model
from heron_core.hookspecs import hookimpl
from heron_core.library import load_library
from heron_core.registry import PluginSpec, registry

__version__ = "0.1.0"
__all__ = ["hookimpl", "load_library", "load_model", "PluginSpec", "registry", "__version__"]
