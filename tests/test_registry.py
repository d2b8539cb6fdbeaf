import pytest

from heron_core import hookimpl
from heron_core.errors import ConfigError, PluginError
from heron_core.registry import KNOWN_DISTRIBUTIONS, PluginSpec, Registry
from heron_core.searcher import ConstrainedRandomSearcher


def test_core_defaults_and_dlboost_come_from_their_distributions():
    reg = Registry()
    assert reg.get("searcher", "crand").distribution == "heron-core"
    assert reg.get("cost_model", "none").distribution == "heron-core"
    assert reg.get("runner", "local").distribution == "heron-core"
    assert reg.get("operator", "gemm").distribution == "heron-core"
    assert reg.get("target", "dlboost").distribution == "heron-cpu-dlboost"
    assert reg.get("target", "dlboost").version == "0.1.0"


class _Dup:
    @hookimpl
    def heron_searchers(self):
        return [PluginSpec("searcher", "crand", ConstrainedRandomSearcher)]


def test_duplicate_name_names_both_distributions():
    with pytest.raises(PluginError) as err:
        Registry(extra=[("my-dup-plugin", _Dup())])
    assert "heron-core" in str(err.value) and "my-dup-plugin" in str(err.value)


def test_unknown_name_suggests_and_lists():
    reg = Registry()
    with pytest.raises(ConfigError) as err:
        reg.get("searcher", "crnd")
    msg = str(err.value)
    assert "did you mean 'crand'" in msg and "crand" in msg.split("available:")[1]


def test_known_plugin_not_installed_says_what_to_install(monkeypatch):
    # a name DESIGN.md lists but that is not installed here (every real one may be)
    monkeypatch.setitem(KNOWN_DISTRIBUTIONS, "target:imaginary", "heron-imaginary")
    with pytest.raises(ConfigError, match="pip install heron-imaginary"):
        Registry().get("target", "imaginary")
