"""Fuzz the config layer: any config dict, file or ``--shape`` string ends in a plan or in one of
Heron's own errors (a clear message, exit 2), never in another exception."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heron_core import cli, config
from heron_core.errors import HeronError
from heron_core.registry import registry
from heron_core.task import Task

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REG = registry()
OPS = sorted(s.name for s in REG.all_specs() if s.kind == "operator")
SHAPE_KEYS = sorted({k for op in OPS for k in REG.get("operator", op).factory.Shape.model_fields} | {"CI", "KH", "padding"})
KEYS = sorted(
    set(config.TuneConfig.model_fields)
    | set(config.LEGACY_KEYS)
    | set(config.LEGACY_IGNORED)
    | {"config", "name", "params", "op", "shape", "microkernel", "repeat", "candidates_per_trial"}
)
WORDS = ["dlboost", "amx", "tensorcore", "llvm -mcpu=x", "cuda", "crand", "CGA", "none", "gbdt", "local", "int8", "int32",
         "float16", "G1", "C2D1", "C2D1,channels_last=1", "generic", *OPS]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.integers(0, 300)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS + SHAPE_KEYS) | st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
shapes = st.dictionaries(st.sampled_from(SHAPE_KEYS), st.integers(-4, 2**40) | st.integers(1, 256) | values, max_size=6)
cases = st.lists(st.fixed_dictionaries({"op": st.sampled_from(OPS) | scalars, "shape": shapes | values}), max_size=3)
plausible = st.fixed_dictionaries(
    {"target": st.sampled_from([{"name": "dlboost", "microkernel": "generic"}, "dlboost", "amx"]) | values, "cases": cases},
    optional={k: values for k in ("trials", "batch_size", "search", "model", "runner", "seed", "in_dtype", "out_dtype")},
)
legacy = st.fixed_dictionaries(
    {"config": st.dictionaries(st.sampled_from(sorted(config.LEGACY_KEYS) + sorted(config.LEGACY_IGNORED)), values, max_size=6)}
)
anything = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), values, max_size=6)


def plan_file(path) -> None:
    """What ``heron tune -c FILE`` does before it writes anything."""
    cfg, legacy_keys, _ = config.load(path, {})
    for spec in config.plan(cfg, REG, legacy_keys).tasks:
        Task(spec, REG)


def only_heron_errors(fn, *args) -> None:
    try:
        fn(*args)
    except HeronError:
        pass


@FUZZ
@given(data=plausible | legacy | anything)
def test_config_dicts(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.json"
    path.write_text(json.dumps(data))
    only_heron_errors(plan_file, path)


@FUZZ
@given(
    text=st.text(max_size=200) | st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
    suffix=st.sampled_from([".toml", ".json"]),
)
def test_config_files(tmp_path_factory, text, suffix):
    path = tmp_path_factory.getbasetemp() / f"fuzz{suffix}"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if suffix == ".json" else text.encode("latin-1", "replace"))
    only_heron_errors(plan_file, path)


@FUZZ
@given(
    text=st.text(alphabet="MKNCHWRSG1234567890=,x-_ ", max_size=40)
    | st.from_regex(r"[A-Za-z_]\w{0,6}(,\w{1,8}=-?\d{1,12}){0,3}", fullmatch=True)
    | st.text(max_size=30),
    op=st.sampled_from(OPS),
)
def test_shape_strings(text, op):
    def tune_shape():
        shape = cli.parse_shape(text)
        target = {"name": "dlboost", "microkernel": "generic"}
        cfg = config.build_config({"target": target, "cases": [{"op": op, "shape": shape}]})
        for spec in config.plan(cfg, REG).tasks:
            Task(spec, REG)

    only_heron_errors(tune_shape)
