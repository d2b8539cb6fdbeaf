"""heron build: tiny ONNX models (fp32 and int8 QDQ) built by the test, tuned with a few trials,
compiled with TVM Relax and Heron's kernels, and checked against ONNX Runtime."""

import json

import numpy as np
import pytest
from conftest import MICROKERNEL, heron

pytest.importorskip("onnxruntime")

from onnx_models import fp32_model, quantize  # noqa: E402

from heron_core import load_model  # noqa: E402
from heron_core.build import compare_with_onnxruntime, find_products, load_onnx  # noqa: E402

PARAMS = ["--target-param", f"microkernel={MICROKERNEL}", "--target-param", "num_cores=1"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    fp32 = fp32_model(root / "tiny.onnx")
    return fp32, quantize(fp32, root / "tiny_qdq.onnx")


def test_qdq_products_are_found_with_their_shapes(models):
    products = find_products(load_onnx(models[1]))
    assert sorted((p.op, p.shape.get("C", p.shape.get("K"))) for p in products) == [
        ("conv2d", 3), ("conv2d", 32), ("dense", 16), ("gemm", 32)
    ]
    first = next(p for p in products if p.shape.get("C") == 3)  # its border padded by the graph with zx
    assert first.pre_pad == ((0, 0), (0, 0), (1, 1), (1, 1)) and first.shape["pad"] == 0 and first.pad_value > 0
    assert all(p.out_dtype == "uint8" and p.shape["bias"] == 1 for p in products)
    assert not find_products(load_onnx(models[0]))  # fp32 products stay TVM's


def test_tune_build_load_matches_onnxruntime(models, tmp_path):
    qdq, db = models[1], tmp_path / "r.db"
    heron("build", str(qdq), "-o", str(tmp_path / "unused"), "--tune-config", str(tmp_path / "tune.json"), "--trials", "2", *PARAMS, check=True)
    cfg = json.loads((tmp_path / "tune.json").read_text())
    assert len(cfg["cases"]) == 4 and cfg["out_dtype"] == "uint8"
    heron("tune", "-c", str(tmp_path / "tune.json"), "--batch-size", "2", "--quiet", db=db, check=True)
    out = tmp_path / "built"
    built = heron("build", str(qdq), "-o", str(out), *PARAMS, "--check", db=db, check=True)
    assert "4 products on Heron kernels, 0 without records" in built.stdout
    model = load_model(out)
    assert len(model.manifest["kernels"]) == 4
    rows = compare_with_onnxruntime(qdq, model, seed=3)
    # int8 outputs dequantized: within one quantization step of ONNX Runtime's int8 run
    assert all(r["rel_l2"] < 0.02 for r in rows), rows
    feeds = {"x": np.zeros((1, 3, 8, 8), np.float32), "t": np.ones((1, 4, 32), np.float32)}
    y, z = model(feeds)
    assert y.shape == (1, 16) and z.shape == (1, 4, 16)


def test_tune_network_then_build_uses_its_records(models, tmp_path):
    """heron tune --network tunes the QDQ layers as the build runs them (bias, requantizing epilogue)."""
    pytest.importorskip("heron_frontend_onnx")
    qdq, db = models[1], tmp_path / "r.db"
    heron("tune", "--network", str(qdq), "--trials", "8", "--batch-size", "2", "--quiet", *PARAMS, db=db, check=True)
    built = heron("build", str(qdq), "-o", str(tmp_path / "built"), *PARAMS, db=db, check=True)
    assert "4 products on Heron kernels, 0 without records" in built.stdout


def test_fp32_model_runs_on_tvm_alone(models, tmp_path):
    out = tmp_path / "fp32"
    built = heron("build", str(models[0]), "-o", str(out), *PARAMS, "--check", db=tmp_path / "empty.db")
    assert built.returncode == 2 and "no records database" in built.stderr  # the database must exist
    heron("records", "import", str(_empty_export(tmp_path)), db=tmp_path / "empty.db", check=True)
    built = heron("build", str(models[0]), "-o", str(out), *PARAMS, "--check", db=tmp_path / "empty.db", check=True)
    assert "0 products on Heron kernels" in built.stdout
    assert all(r["max_abs"] < 1e-4 for r in compare_with_onnxruntime(models[0], load_model(out)))


def _empty_export(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    return path


def test_broken_model_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    proc = heron("build", str(bad), "-o", str(tmp_path / "o"), db=tmp_path / "r.db")
    assert proc.returncode == 2
    assert "not a valid ONNX model" in proc.stderr and "Traceback" not in proc.stderr


def test_rest_of_the_graph_is_scheduled_and_exact(tmp_path):
    """Every PrimFunc not on Heron's kernels gets a CPU schedule (graph_schedule), and the numbers stay TVM's."""
    import tvm
    from onnx_models import attention_model
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    from heron_core import graph_schedule, tvm_compat
    from heron_core.build import Model, load_onnx

    path = attention_model(tmp_path / "attention.onnx")
    mod = tvm_compat.relax_from_onnx(load_onnx(path), "none", [])
    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    with target:
        fused = tvm.transform.Sequential(cpu.library_dispatch_passes(target) + cpu.legalize_passes(target))(mod)
    rules = {name: type(rule).__name__ for name, rule in graph_schedule.rules_applied(fused, target).items()}
    assert set(rules.values()) >= {"Matmul", "RowReduction", "Injective"}, rules
    assert all(rule == "RowReduction" for name, rule in rules.items() if "softmax" in name or "layer_norm" in name), rules
    out = tmp_path / "built"
    out.mkdir()
    executable = tvm_compat.build_relax(mod, {"kind": "llvm", "num-cores": 1}, graph_schedule.pipeline)
    tvm_compat.export(executable, str(out / "model.so"))
    inputs = [{"name": "t", "shape": [2, 8, 32], "dtype": "float32"}]
    (out / "model.json").write_text(json.dumps({"heron_model": 1, "inputs": inputs, "outputs": ["y"], "kernels": []}))
    rows = compare_with_onnxruntime(path, Model(out))
    assert all(r["max_abs"] < 1e-4 for r in rows), rows
