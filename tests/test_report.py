import pytest
from conftest import heron

from heron_core import report
from heron_core.measure import MeasureResult, Status
from heron_core.records import RecordDB

TASK = {
    "target": {"name": "dlboost", "params": {"microkernel": "generic"}},
    "op": "gemm",
    "shape": {"M": 16, "K": 32, "N": 16},
    "in_dtype": "int8",
    "out_dtype": "int32",
}
WORKLOAD = "gemm[M=16,K=32,N=16]:int8->int32"


def fill(path):
    """Two runs of one workload (crand, then cga), and a workload whose operator is not installed."""
    db = RecordDB(path)
    common = dict(workload_key=WORKLOAD, target_key="dlboost/x/2c/generic", task=TASK, target_info={}, versions={})
    run1, run2 = db.start_run({}, {}), db.start_run({}, {})
    for i, (status, us) in enumerate([(Status.OK, 4.0), (Status.BUILD_ERROR, 0), (Status.OK, 2.0), (Status.RUN_TIMEOUT, 0)]):
        costs = [us * 1e-6] if us else []
        db.add(MeasureResult({"a": i}, status, costs, build_s=1.0, run_s=0.5), **common, searcher="crand", run_id=run1)
    for i, us in enumerate([3.0, 1.0]):
        db.add(
            MeasureResult({"a": 10 + i}, Status.OK, [us * 1e-6], build_s=1.0, run_s=0.5), **common, searcher="cga", run_id=run2
        )
    other = dict(common, workload_key="magic[N=1]:int8->int32", task={**TASK, "op": "magic"})
    db.add(MeasureResult({"a": 1}, Status.BUILD_ERROR, error="no"), **other, searcher="crand", run_id=None)
    return db


def test_collect_statistics_and_curves(tmp_path):
    db = fill(tmp_path / "r.db")
    gemm, magic = report.collect(db)
    assert (gemm.trials, gemm.ok, dict(gemm.failures)) == (6, 4, {"build_error": 1, "run_timeout": 1})
    assert gemm.best_latency_s == pytest.approx(1e-6) and gemm.op_count == 2 * 16 * 32 * 16
    assert gemm.gops == pytest.approx(2 * 16 * 32 * 16 / 1e-6 / 1e9)
    assert gemm.measure_s == pytest.approx(9.0) and gemm.wall_s is not None and gemm.searchers == ["crand", "cga"]
    first, second = gemm.curves
    assert (
        first.label.endswith("(crand)")
        and first.trials == [1, 2, 3, 4]
        and first.best_ms == pytest.approx([4e-3, 4e-3, 2e-3, 2e-3])
    )
    assert second.trials == [4, 5, 6] and second.best_ms == pytest.approx([2e-3, 2e-3, 1e-3])  # joins where the first ended
    assert magic.op_count is None and magic.gops is None and magic.best_latency_s is None and magic.wall_s is None
    rows = report.table_rows([gemm, magic])
    assert rows[0][2:5] == ["0.0010", "16.4", "6"] and rows[0][6] == "build_error=1 run_timeout=1"
    assert rows[1][2:4] == ["-", "-"]
    assert [r.workload_key for r in report.collect(db, workload="magic")] == ["magic[N=1]:int8->int32"]
    assert report.collect(db, target="nothing") == []


def test_slugs_are_safe_file_names():
    rep = report.WorkloadReport("conv2d[N=1,C=64]:int8->int32", "dlboost/cascadelake/4c")
    assert rep.slug == "conv2d_N=1,C=64_int8-_int32@dlboost_cascadelake_4c"
    assert len(report.WorkloadReport("x" * 400, "t").slug) <= 150


def test_report_cli_writes_pngs_and_self_contained_html(tmp_path):
    fill(tmp_path / "r.db").close()
    proc = heron("report", "--out", str(tmp_path / "out"), "--html", db=tmp_path / "r.db", check=True)
    assert WORKLOAD in proc.stdout and "build_error=1 run_timeout=1" in proc.stdout and "16.4" in proc.stdout
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2 and "http" not in page and WORKLOAD.replace(">", "&gt;") in page


def test_report_errors(tmp_path):
    proc = heron("report", db=tmp_path / "missing.db")
    assert proc.returncode == 2 and "no records database" in proc.stderr and "Traceback" not in proc.stderr
    RecordDB(tmp_path / "empty.db").close()
    proc = heron("report", "--out", str(tmp_path), db=tmp_path / "empty.db")
    assert proc.returncode == 1 and "no records in" in proc.stderr and not list(tmp_path.glob("*.png"))


def test_network_layer_cells_give_percent_of_peak():
    row = report.LayerReport("fc", "dense", 2, "wk", trials=8, best_latency_s=1e-3, op_count=50e9 * 1e-3, peak_gops=200.0)
    cells = dict(zip(report.LAYER_HEADERS, report.layer_cells([row])[0]))
    assert cells["GOPS"] == "50.0" and cells["% peak"] == "25%"
    row.peak_gops = None  # a target that does not know its peak, or records from another machine
    assert dict(zip(report.LAYER_HEADERS, report.layer_cells([row])[0]))["% peak"] == "-"
