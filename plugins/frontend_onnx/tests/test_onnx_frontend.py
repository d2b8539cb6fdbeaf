"""The ONNX frontend on tiny graphs built here (fp32 and QDQ int8), then a whole-network tune:
scheduler, interruption and resume, report and export --network."""

import json
import os
import subprocess
import sys

import pytest
from tiny_models import fp32_model, qdq_model

from heron_core.config import build_config, plan
from heron_core.network import load_network, network_tasks
from heron_core.records import RecordDB
from heron_core.registry import registry
from heron_core.scheduler import SchedulerParams, TaskScheduler
from heron_core.task import PluginRef
from heron_core.tuner import Tuner
from heron_cpu_dlboost.cpu import host_cpu

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"


def heron(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "heron_core.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=600,
    )
    if check and proc.returncode:
        raise AssertionError(f"heron {args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    fp32_model(root / "tiny.onnx")
    qdq_model(root / "tiny_qdq.onnx")
    return root


def test_fp32_layers_counts_and_unmapped_nodes(models):
    net = load_network(str(models / "tiny.onnx"), registry(), {"batch": 2})
    layers = {layer.name: layer for layer in net.layers}
    assert set(layers) == {"conv_a", "conv_grouped", "fc", "proj"}
    assert layers["conv_grouped"].shape["groups"] == 2
    assert layers["conv_a"].count == 2 and layers["conv_a"].nodes == ("conv_a", "conv_b")  # identical convs merged
    assert layers["conv_a"].shape == {
        "N": 2,
        "C": 16,
        "H": 8,
        "W": 8,
        "K": 16,
        "R": 3,
        "S": 3,
        "stride": 1,
        "pad": 1,
        "dilation": 1,
    }
    assert (layers["fc"].op, layers["fc"].shape) == ("dense", {"M": 2, "K": 1024, "N": 16})  # Gemm transB=1
    assert (layers["proj"].op, layers["proj"].shape) == ("gemm", {"M": 2, "K": 16, "N": 32})
    assert all(layer.precision == "float" for layer in net.layers)
    unmapped = {u.op_type: u for u in net.unmapped}
    assert set(unmapped) == {"Relu", "Flatten"} and unmapped["Relu"].count == 1 and unmapped["Flatten"].count == 1


def test_qdq_layers_are_int8_and_absorb_their_quantize_nodes(models):
    net = load_network(str(models / "tiny_qdq.onnx"), registry())
    assert [(layer.op, layer.precision) for layer in net.layers] == [("conv2d", "int8"), ("gemm", "int8")]
    assert net.layers[1].shape == {"M": 16, "K": 32, "N": 16}
    rest = {u.op_type: u.count for u in net.unmapped}
    assert rest == {"QuantizeLinear": 1, "DequantizeLinear": 1, "Reshape": 1}  # the input's Q/DQ pair only
    items = network_tasks(net, PluginRef(name="dlboost", params={"microkernel": MICROKERNEL}), registry())
    assert all(i.task and i.spec.in_dtype == "int8" for i in items)


def test_show_lists_layers_and_refused_ones_and_broken_files_exit_2(models, tmp_path):
    out = heron("network", "show", models / "tiny.onnx").stdout
    assert "conv_a" in out and "Relu" in out
    # 8 output channels per group: dlboost's general template tiles 16 of one group
    assert "not tunable on this target: conv_grouped" in out and "grouped convolution" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    proc = heron("network", "show", bad, check=False)
    assert proc.returncode == 2 and "not a readable ONNX model" in proc.stderr and "Traceback" not in proc.stderr
    assert heron("network", "show", "resnet51", check=False).returncode == 2


def test_network_tune_interrupt_resume_report_export(models, tmp_path):
    db_path, model = tmp_path / "net.db", str(models / "tiny.onnx")
    cfg = build_config(
        {
            "target": {"name": "dlboost", "microkernel": MICROKERNEL, "num_cores": 1},
            "trials": 16,
            "batch_size": 4,
            "db": str(db_path),
        }
    )
    p = plan(cfg, registry())
    net = load_network(model, registry())
    items = network_tasks(net, p.tasks[0].target, registry())
    rounds = []

    def run(stop_after: int | None):
        db = RecordDB(db_path)
        tuner = Tuner(p, registry(), db, stop=lambda: stop_after is not None and len(rounds) >= stop_after)
        events = lambda kind, data: rounds.append(data) if kind == "network_round" else None  # noqa: E731
        try:
            return TaskScheduler(tuner, net, items, 16, SchedulerParams(), events).run()
        finally:
            tuner.close()
            db.close()

    first = run(stop_after=2)  # Ctrl-C after the second batch: stops once it is recorded
    assert first.interrupted and first.spent == 8
    second = run(None)  # re-run: the scheduler's state comes back from the records
    assert not second.interrupted and second.spent == 16 and second.measured_now == 8
    assert sum(s.rounds for s in second.states) == 4 and all(s.rounds for s in second.states)
    assert second.latency_s and second.latency_s == sum(s.weight * s.best for s in second.states)

    target = ["--target", "dlboost", "--target-param", f"microkernel={MICROKERNEL}", "--target-param", "num_cores=1"]
    events = heron("tune", "--network", model, *target, "--trials", 20, "--batch-size", 4, "--db", db_path, "--json").stdout
    events = [json.loads(line) for line in events.splitlines()]
    assert events[0]["event"] == "network_start" and events[0]["spent"] == 16  # the CLI continues the same records
    assert events[-1]["event"] == "network_done" and events[-1]["spent"] == 20 and events[-1]["tasks_tuned"] == 3

    report = heron("report", "--network", model, "--db", db_path, "--out", tmp_path / "rep", "--html").stdout
    assert "conv_a" in report and "network latency" in report
    assert list((tmp_path / "rep").glob("*.png")) and list((tmp_path / "rep").glob("*.html"))
    heron("export", tmp_path / "lib", "--network", model, "--db", db_path)
    manifest = json.loads((tmp_path / "lib" / "manifest.json").read_text())
    assert manifest["layers"]["conv_b"] == manifest["layers"]["conv_a"]
    import heron_core

    lib = heron_core.load_library(tmp_path / "lib")
    assert lib.find(layer="fc").name.startswith("dense[M=1,K=1024,N=16]")
