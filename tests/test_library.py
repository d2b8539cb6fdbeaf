"""tune -> export -> load and call, with nothing but numpy and the TVM runtime."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import MICROKERNEL, heron

import heron_core
from heron_core.library import LibraryError


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    db = root / "records.db"
    cases = [
        {"op": "gemm", "shape": {"M": 16, "K": 32, "N": 32}},
        {"op": "conv2d", "shape": {"N": 1, "C": 8, "H": 6, "W": 6, "K": 16, "R": 3, "S": 3, "pad": 1}},
        {"op": "scan", "shape": {"M": 4, "N": 32, "K": 16}},
    ]
    cfg = {"target": {"name": "dlboost", "microkernel": MICROKERNEL}, "cases": cases, "trials": 3}
    (root / "cfg.json").write_text(json.dumps(cfg))
    heron("tune", "-c", str(root / "cfg.json"), "--quiet", db=db, check=True)  # one process tunes the three
    heron(
        "tune",
        "--target",
        "dlboost",
        "--target-param",
        f"microkernel={MICROKERNEL}",
        "--shape",
        "M=16,K=16,N=16",
        "--trials",
        "2",
        "--runner-param",
        "build_timeout=0.001",
        "--quiet",
        db=db,
    )  # every build times out
    proc = heron("export", str(root / "lib"), "--op", "gemm", "--workload", "M=16,K=32", db=db, check=True)
    assert "exported gemm[M=16,K=32,N=32]" in proc.stdout
    heron("export", str(root / "lib"), "--op", "conv2d", db=db, check=True)  # added to the same library
    heron("export", str(root / "lib"), "--op", "scan", db=db, check=True)
    return root, db


def test_exported_kernels_compute_the_reference(library):
    root, _ = library
    manifest = json.loads((root / "lib" / "manifest.json").read_text())
    assert [k["op"] for k in manifest["kernels"]] == ["gemm", "conv2d", "scan"]
    entry = manifest["kernels"][0]
    assert entry["latency_s"] > 0 and entry["record_id"] >= 1 and "apache-tvm" in entry["versions"]
    assert (root / "lib" / entry["script"]).read_text().startswith("# from tvm.script")
    lib = heron_core.load_library(root / "lib")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 32), dtype=np.uint8)
    b = rng.integers(-128, 128, (32, 32), dtype=np.int8)
    gemm = lib["gemm[M=16,K=32,N=32]:int8->int32"]
    np.testing.assert_array_equal(gemm(a, b), a.astype(np.int32) @ b.astype(np.int32))
    packed = gemm.pack("B", b)  # constant weights packed once
    np.testing.assert_array_equal(gemm(a, packed), a.astype(np.int32) @ b.astype(np.int32))
    conv = lib.find("conv2d", C=8)
    x = rng.integers(0, 256, (1, 8, 6, 6), dtype=np.uint8)
    w = rng.integers(-128, 128, (16, 8, 3, 3), dtype=np.int8)
    assert conv(x, w).shape == (1, 16, 6, 6)
    scan = lib.find("scan")  # its mask travels with the library and is passed by it
    assert [p["name"] for p in scan.inputs] == ["A"]
    a = rng.integers(0, 256, (4, 16), dtype=np.uint8)
    np.testing.assert_array_equal(scan(a), np.cumsum(a.astype(np.int32), axis=1)[:, np.minimum(np.arange(32), 15)])


def test_wrong_arguments_get_clear_errors(library):
    lib = heron_core.load_library(library[0] / "lib")
    gemm = lib.find("gemm")
    a, b = np.zeros((16, 32), np.uint8), np.zeros((32, 32), np.int8)
    with pytest.raises(LibraryError, match=r"'A' must be uint8 of shape \(16, 32\), got uint8 of shape \(32, 16\)"):
        gemm(a.T.copy(), b)
    with pytest.raises(LibraryError, match="'B' must be int8 .* got float32"):
        gemm(a, b.astype(np.float32))
    with pytest.raises(LibraryError, match="takes 2 arguments, got 1"):
        gemm(a)
    with pytest.raises(LibraryError, match="no conv1d kernel"):
        lib.find("conv1d")


def test_loading_needs_no_solver_or_cost_model(library):
    code = (
        "import sys, numpy as np\n"
        "for m in ('ortools', 'lightgbm', 'pebble'): sys.modules[m] = None  # importing them would fail\n"
        "import heron_core\n"
        f"lib = heron_core.load_library({str(library[0] / 'lib')!r})\n"
        "print(lib.find('gemm')(np.ones((16, 32), np.uint8), np.ones((32, 32), np.int8))[0, 0])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "32"


def test_a_library_for_another_cpu_is_refused(library, tmp_path):
    src = library[0] / "lib"
    manifest = json.loads((src / "manifest.json").read_text())
    for entry in manifest["kernels"]:
        entry["requires_cpu_flags"].append("amx_int8_from_the_future")
        (tmp_path / entry["module"]).write_bytes((src / entry["module"]).read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LibraryError, match="built for a CPU with amx_int8_from_the_future, which this one lacks"):
        heron_core.load_library(tmp_path)


def test_export_bad_input(library, tmp_path):
    _, db = library
    proc = heron("export", str(tmp_path / "x"), "--workload", "M=16,K=16", db=db)
    assert proc.returncode == 2 and "no successful record to export for: gemm[M=16,K=16,N=16]" in proc.stderr
    proc = heron("export", str(tmp_path / "x"), db=db)
    assert proc.returncode == 2 and "--all" in proc.stderr
    proc = heron("export", str(tmp_path / "x"), "--all", db=tmp_path / "missing.db")
    assert proc.returncode == 2 and "no records database" in proc.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "missing.db").exists()


def _copy(src, dst, edit=lambda manifest: None):
    manifest = json.loads((src / "manifest.json").read_text())
    for name in src.iterdir():
        if name.name != "manifest.json":
            (dst / name.name).write_bytes(name.read_bytes())
    edit(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_manifest_paths_must_stay_inside_the_library(library, tmp_path):
    src = library[0] / "lib"
    (tmp_path / "lib").mkdir()
    outside = tmp_path / "elsewhere.so"
    outside.write_bytes((src / json.loads((src / "manifest.json").read_text())["kernels"][0]["module"]).read_bytes())

    def point_outside(manifest):
        manifest["kernels"][0]["module"] = "../elsewhere.so"

    _copy(src, tmp_path / "lib", point_outside)
    with pytest.raises(LibraryError, match=r"names '../elsewhere.so', outside the library folder: refused"):
        heron_core.load_library(tmp_path / "lib")


def test_a_truncated_module_is_refused_by_its_sha256(library, tmp_path):
    manifest = _copy(library[0] / "lib", tmp_path)
    entry = manifest["kernels"][0]
    assert set(entry["sha256"]) >= {entry["module"], entry["script"]}
    module = tmp_path / entry["module"]
    module.write_bytes(module.read_bytes()[:4096])
    with pytest.raises(LibraryError, match=f"{entry['module']} is not the file exported .* truncated or replaced"):
        heron_core.load_library(tmp_path)
    (tmp_path / "manifest.json").write_text('{"kernels": [')
    with pytest.raises(LibraryError, match="manifest.json cannot be read"):
        heron_core.load_library(tmp_path)
    (tmp_path / "manifest.json").write_text('{"kernels": [{"workload_key": "x"}]}')
    with pytest.raises(LibraryError, match="kernel 0 lacks device, module, op, params, shape, target_info"):
        heron_core.load_library(tmp_path)
